package deploytest

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageRuntimeStage builds the runtime stage of deploy/Dockerfile
// with podman and inspects the image. No registry is reachable here, so the
// build stage (FROM golang) cannot run: its output is made the same way on
// this machine (a static binary, the CA bundle, /etc/credgate) and the
// runtime stage's own instructions are built unchanged on top. podman run
// does not work on these machines, so the image's filesystem and
// configuration are read from `podman save`.
func TestImageRuntimeStage(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is needed to build the image (.ci/run installs it)")
	}
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	_, stage, ok := strings.Cut(string(df), "\nFROM scratch AS runtime\n")
	if !ok || !strings.Contains(string(df), "FROM golang:") {
		t.Fatal("deploy/Dockerfile has no build stage and runtime stage FROM scratch")
	}
	// What the build stage leaves in /out, made here.
	ctx := t.TempDir()
	out := filepath.Join(ctx, "out")
	for _, d := range []string{"etc/ssl/certs", "etc/credgate"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, credgateBinary(t), filepath.Join(out, "credgate"), 0o755)
	copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(out, "etc/ssl/certs/ca-certificates.crt"), 0o644)
	containerfile := "FROM scratch AS runtime\n" + strings.ReplaceAll(stage, "COPY --from=build /out/", "COPY out/")
	if err := os.WriteFile(filepath.Join(ctx, "Containerfile"), []byte(containerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	tag := "localhost/credgate-deploytest:" + hex.EncodeToString(b)
	podman(t, "build", "--pull=never", "--layers=false", "--build-arg", "VERSION=test", "-t", tag, "-f", filepath.Join(ctx, "Containerfile"), ctx)
	t.Cleanup(func() { _ = exec.Command("podman", "rmi", "-f", tag).Run() })

	var inspect []struct {
		Config struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			Labels       map[string]string
			ExposedPorts map[string]any
			Healthcheck  any
		}
	}
	if err := json.Unmarshal(podman(t, "image", "inspect", tag), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect: %v", err)
	}
	cfg := inspect[0].Config
	if cfg.User == "" || strings.HasPrefix(cfg.User, "0") || strings.HasPrefix(cfg.User, "root") {
		t.Errorf("the image runs as %q, not a non-root user", cfg.User)
	}
	if strings.Join(cfg.Entrypoint, " ") != "/credgate" || strings.Join(cfg.Cmd, " ") != "serve -config /etc/credgate/credgate.yaml" {
		t.Errorf("entrypoint %v, cmd %v", cfg.Entrypoint, cfg.Cmd)
	}
	if cfg.Labels["org.opencontainers.image.title"] != "credgate" || cfg.Labels["org.opencontainers.image.version"] != "test" || cfg.Labels["org.opencontainers.image.source"] == "" {
		t.Errorf("labels: %v", cfg.Labels)
	}
	if cfg.Healthcheck != nil {
		t.Errorf("a HEALTHCHECK: %v", cfg.Healthcheck)
	}
	if _, ok := cfg.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports: %v", cfg.ExposedPorts)
	}

	archive := filepath.Join(t.TempDir(), "image.tar")
	podman(t, "save", "--format", "docker-archive", "-o", archive, tag)
	files := imageFiles(t, archive)
	if m, ok := files["credgate"]; !ok || m&0o111 == 0 {
		t.Errorf("no executable /credgate: %v", files)
	}
	if _, ok := files["etc/ssl/certs/ca-certificates.crt"]; !ok {
		t.Error("no CA bundle: credgate could not verify Vault's or an issuer's certificate")
	}
	for f := range files {
		switch {
		case f == "bin/sh" || path.Base(f) == "sh" || path.Base(f) == "bash" || path.Base(f) == "busybox":
			t.Errorf("a shell in the image: /%s", f)
		case f != "credgate" && !strings.HasPrefix(f, "etc/"):
			t.Errorf("unexpected file in the image: /%s", f)
		}
	}
}

// imageFiles reads a docker-archive and returns every regular file of
// every layer with its mode.
func imageFiles(t *testing.T, archive string) map[string]os.FileMode {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	layers := map[string][]byte{}
	var manifest []struct{ Layers []string }
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "manifest.json" {
			if err := json.Unmarshal(b, &manifest); err != nil {
				t.Fatal(err)
			}
			continue
		}
		layers[h.Name] = b
	}
	if len(manifest) != 1 {
		t.Fatalf("manifest: %v", manifest)
	}
	files := map[string]os.FileMode{}
	for _, l := range manifest[0].Layers {
		lr := tar.NewReader(strings.NewReader(string(layers[l])))
		for {
			h, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", l, err)
			}
			if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeSymlink {
				files[strings.TrimPrefix(path.Clean(h.Name), "/")] = os.FileMode(h.Mode)
			}
		}
	}
	return files
}

func podman(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("podman", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}
