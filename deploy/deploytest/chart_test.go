package deploytest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const chartDir = "../helm/credgate"

// rendered is what the chart rendered, decoded into Kubernetes' own types.
type rendered struct {
	deployment     *appsv1.Deployment
	configMap      *corev1.ConfigMap
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	networkPolicy  *networkingv1.NetworkPolicy
	serviceMonitor *monitoringv1.ServiceMonitor
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func valuesFile(t *testing.T, path string) map[string]any {
	t.Helper()
	if path == "" {
		return map[string]any{}
	}
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// render is `helm template` through Helm's own library.
func render(t *testing.T, vals map[string]any) (string, error) {
	t.Helper()
	inst := action.NewInstall(&action.Configuration{})
	inst.DryRun, inst.ClientOnly, inst.Replace = true, true, true
	inst.ReleaseName, inst.Namespace = "credgate", "credgate"
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.31.0", Major: "1", Minor: "31"}
	inst.APIVersions = chartutil.VersionSet{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"}
	rel, err := inst.Run(loadChart(t), vals)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}

// fresh points *dst at a new T and returns it, to decode into.
func fresh[T any](dst **T) *T {
	*dst = new(T)
	return *dst
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decode splits a manifest and decodes every object strictly (an unknown
// field is an error) into its API type; a kind the chart should not make
// fails the test.
func decode(t *testing.T, manifest string) rendered {
	t.Helper()
	var out rendered
	for _, doc := range docSep.Split(manifest, -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var head struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatal(err)
		}
		var obj any
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			obj = fresh(&out.deployment)
		case "v1 ConfigMap":
			obj = fresh(&out.configMap)
		case "v1 Service":
			obj = fresh(&out.service)
		case "v1 ServiceAccount":
			obj = fresh(&out.serviceAccount)
		case "policy/v1 PodDisruptionBudget":
			obj = fresh(&out.pdb)
		case "autoscaling/v2 HorizontalPodAutoscaler":
			obj = fresh(&out.hpa)
		case "networking.k8s.io/v1 NetworkPolicy":
			obj = fresh(&out.networkPolicy)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			obj = fresh(&out.serviceMonitor)
		default:
			t.Fatalf("the chart rendered a %s %s:\n%s", head.APIVersion, head.Kind, doc)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s does not decode strictly into its API type: %v\n%s", head.Kind, err, doc)
		}
	}
	return out
}

// TestChartLintsAndRendersIntoValidObjects is `helm lint` and `helm
// template` of the chart with its default values and with the production
// example, each object decoded strictly into its Kubernetes type, and the
// configuration in the ConfigMap accepted by `credgate serve -check-config`.
func TestChartLintsAndRendersIntoValidObjects(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		want         func(t *testing.T, r rendered)
	}{
		{"default values", "", func(t *testing.T, r rendered) {
			if r.hpa != nil || r.serviceMonitor != nil || r.networkPolicy != nil {
				t.Error("optional objects rendered by default")
			}
			if *r.deployment.Spec.Replicas != 1 {
				t.Errorf("replicas %d", *r.deployment.Spec.Replicas)
			}
		}},
		{"production example", filepath.Join(chartDir, "values-production.example.yaml"), func(t *testing.T, r rendered) {
			if r.hpa == nil || r.hpa.Spec.MinReplicas == nil || *r.hpa.Spec.MinReplicas != 3 || r.deployment.Spec.Replicas != nil {
				t.Error("autoscaling not rendered as asked")
			}
			if r.serviceMonitor == nil || r.serviceMonitor.Spec.Endpoints[0].Path != "/metrics" {
				t.Error("no ServiceMonitor for /metrics")
			}
			if r.networkPolicy == nil || len(r.networkPolicy.Spec.Ingress) != 1 {
				t.Error("no NetworkPolicy")
			}
			c := r.deployment.Spec.Template.Spec.Containers[0]
			if len(c.Env) != 1 || c.Env[0].Name != "CREDGATE_REDIS_PASSWORD" || c.Env[0].ValueFrom.SecretKeyRef.Name != "credgate-redis" {
				t.Errorf("the Redis password is not taken from its Secret: %+v", c.Env)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := valuesFile(t, tc.values)
			lint := action.NewLint()
			lint.Namespace = "credgate"
			res := lint.Run([]string{chartDir}, vals)
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
			for _, err := range res.Errors {
				t.Errorf("helm lint: %v", err)
			}
			manifest, err := render(t, vals)
			if err != nil {
				t.Fatal(err)
			}
			r := decode(t, manifest)
			if r.deployment == nil || r.configMap == nil || r.service == nil || r.serviceAccount == nil || r.pdb == nil {
				t.Fatalf("missing objects: %+v", r)
			}
			pod := r.deployment.Spec.Template.Spec
			c := pod.Containers[0]
			if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Error("probes are not /healthz (liveness) and /readyz (readiness)")
			}
			sc := c.SecurityContext
			if sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
				t.Errorf("container securityContext not restrictive: %+v", sc)
			}
			if psc := pod.SecurityContext; psc == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil {
				t.Errorf("pod securityContext not restrictive: %+v", psc)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Error("no resources")
			}
			if pod.ServiceAccountName != r.serviceAccount.Name {
				t.Errorf("the pod runs as %q, the chart made %q", pod.ServiceAccountName, r.serviceAccount.Name)
			}
			conf := r.configMap.Data["credgate.yaml"]
			for _, secret := range []string{"token:", "password:", "secret_id:", "hvs."} {
				if strings.Contains(conf, secret) {
					t.Errorf("the ConfigMap holds %q:\n%s", secret, conf)
				}
			}
			checkConfig(t, conf)
			tc.want(t, r)
		})
	}
}

// TestChartRefusesValuesThatCannotWork: several replicas without Redis
// would each keep their own rate-limit counters; a projected token without
// the jwt method would be mounted for nothing.
func TestChartRefusesValuesThatCannotWork(t *testing.T) {
	for vals, want := range map[string]string{
		"replicaCount: 3\n":                 "config.rate_limit.redis.address is required",
		"autoscaling: {enabled: true}\n":    "config.rate_limit.redis.address is required",
		"projectedToken: {enabled: true}\n": "projectedToken.enabled goes with config.vault.auth.method: jwt",
	} {
		var v map[string]any
		if err := yaml.Unmarshal([]byte(vals), &v); err != nil {
			t.Fatal(err)
		}
		if _, err := render(t, v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", vals, err, want)
		}
	}
	// With the jwt method, the projected token is mounted where the
	// configuration says.
	var v map[string]any
	_ = yaml.Unmarshal([]byte("projectedToken: {enabled: true, audience: vault}\nconfig: {vault: {auth: {method: jwt, role: credgate}}}\n"), &v)
	manifest, err := render(t, chartutil.CoalesceTables(v, valuesFile(t, filepath.Join(chartDir, "values.yaml"))))
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, manifest)
	if !strings.Contains(r.configMap.Data["credgate.yaml"], "jwt_file: /var/run/secrets/credgate/vault/token") {
		t.Fatalf("jwt_file not set:\n%s", r.configMap.Data["credgate.yaml"])
	}
	checkConfig(t, r.configMap.Data["credgate.yaml"])
	vols := r.deployment.Spec.Template.Spec.Volumes
	if vols[len(vols)-1].Projected == nil || vols[len(vols)-1].Projected.Sources[0].ServiceAccountToken.Audience != "vault" {
		t.Fatalf("no projected token: %+v", vols)
	}
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// credgateBinary builds credgate from the repository once per test run.
func credgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "deploytest-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "credgate")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/credgate")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			binary = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building credgate: %v\n%s", buildErr, binary)
	}
	return binary
}

// checkConfig runs credgate serve -check-config on a configuration.
func checkConfig(t *testing.T, conf string) {
	t.Helper()
	dir := t.TempDir()
	// The files the pod mounts (Vault's CA) are stood in for by one here.
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	conf = strings.ReplaceAll(conf, "/etc/credgate/vault-ca/ca.crt", ca)
	path := filepath.Join(dir, "credgate.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(credgateBinary(t), "serve", "-check-config", "-config", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no VAULT_TOKEN: the chart's methods need none
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "configuration is valid") {
		t.Fatalf("credgate serve -check-config refused the rendered configuration: %v\n%s\n%s", err, out.String(), conf)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" && buildErr == nil {
		_ = os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}
