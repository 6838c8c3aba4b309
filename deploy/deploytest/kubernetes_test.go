package deploytest

import (
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestCredgateRunRecipe: deploy/kubernetes/credgate-run.yaml decodes into
// Kubernetes' own types (unknown fields refused) and keeps its promises:
// the init container installs credgate into an in-memory volume, the
// application starts through credgate run, and its token is the pod's
// service-account token projected for credgate, never a value in the
// manifest. (No cluster here: what a kubelet does with it is not run.)
func TestCredgateRunRecipe(t *testing.T) {
	raw, err := os.ReadFile("../kubernetes/credgate-run.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(raw, &d); err != nil {
		t.Fatalf("the recipe is not a Deployment: %v", err)
	}
	spec := d.Spec.Template.Spec
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	if v := vols["credgate-bin"]; v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Fatalf("credgate's binary is not in an in-memory volume: %+v", v)
	}
	if v := vols["credgate-token"]; v.Projected == nil || len(v.Projected.Sources) != 1 || v.Projected.Sources[0].ServiceAccountToken == nil || v.Projected.Sources[0].ServiceAccountToken.Audience != "credgate" {
		t.Fatalf("the token is not the pod's, projected for credgate: %+v", v)
	}
	if len(spec.InitContainers) != 1 || !slices.Equal(spec.InitContainers[0].Command[:2], []string{"/credgate", "install"}) {
		t.Fatalf("init container: %+v", spec.InitContainers)
	}
	app := spec.Containers[0]
	cmd := strings.Join(app.Command, " ")
	if !strings.HasPrefix(cmd, "/opt/credgate/credgate run -service ") || !strings.HasSuffix(cmd, " --") || len(app.Args) == 0 {
		t.Fatalf("the application does not start through credgate run: %q %q", cmd, app.Args)
	}
	env := map[string]string{}
	for _, e := range app.Env {
		env[e.Name] = e.Value
	}
	if env["CREDGATE_TOKEN_FILE"] != "/var/run/secrets/credgate/token" || env["CREDGATE_ADDR"] == "" || env["CREDGATE_TOKEN"] != "" {
		t.Fatalf("env: %v", env)
	}
}

// TestExternalSecretsRecipeDecodes: deploy/kubernetes/external-secrets.yaml
// holds the Secret, the two SecretStores and the ExternalSecrets the README
// describes (the requests are replayed against credgate in httpapi's
// TestExternalSecretsRecipe).
func TestExternalSecretsRecipeDecodes(t *testing.T) {
	raw, err := os.ReadFile("../kubernetes/external-secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var obj struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		if obj.Kind == "Secret" {
			var s corev1.Secret
			if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil || s.Labels["external-secrets.io/type"] != "webhook" {
				t.Fatalf("the token Secret: %v %+v", err, s.Labels)
			}
		}
		kinds[obj.APIVersion+" "+obj.Kind]++
	}
	if kinds["external-secrets.io/v1 SecretStore"] != 2 || kinds["external-secrets.io/v1 ExternalSecret"] != 2 || kinds["v1 Secret"] != 1 {
		t.Fatalf("objects: %v", kinds)
	}
}
