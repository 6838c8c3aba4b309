// Package deploytest holds the tests of deploy/: the Helm chart (linted,
// rendered and decoded strictly into Kubernetes API types), the compose file
// (loaded by compose-go) and the image (its runtime stage built with podman
// and its filesystem inspected). It is a module of its own so that Helm's
// and Kubernetes' dependencies stay out of credgate's go.mod.
package deploytest
