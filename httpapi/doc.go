// Package httpapi serves credgate's HTTP API (API.md) with gin: the services
// family (plain JSON) and the credentials family (success envelopes), the
// operations endpoints, and the middleware every request passes: request id,
// one access-log line, panic recovery, body limit, authentication, tenant
// check and the early permission check. Handlers are thin: they decode
// (request.go), call the store, which applies the records' rules from the
// root package, and encode; errors are returned with c.Error and rendered in
// one place from one status table (errors.go).
package httpapi
