package httpapi_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"text/template"

	"github.com/PaesslerAG/jsonpath"
	"gopkg.in/yaml.v3"
)

// esoWebhook is the part of an External Secrets Operator SecretStore's
// webhook provider the recipe in deploy/kubernetes/external-secrets.yaml
// sets.
type esoWebhook struct {
	URL     string            `yaml:"url"`
	Method  string            `yaml:"method"`
	Headers map[string]string `yaml:"headers"`
	Result  struct {
		JSONPath string `yaml:"jsonPath"`
	} `yaml:"result"`
}

// esoFetch replays what ESO's webhook provider does (its
// pkg/provider/webhook, as documented at external-secrets.io): the URL and
// headers are Go templates over {remoteRef: {key, version, property} (each
// query-escaped), <secret name>: {its keys}}, the method defaults to GET,
// a 404 is "no secret", any other non-2xx an error, and result.jsonPath
// (PaesslerAG/jsonpath, as ESO uses; ESO reads the answer with a YAML
// parser, which takes JSON) picks the value from the JSON.
func esoFetch(t *testing.T, p esoWebhook, key string, secrets map[string]map[string]string) (any, int) {
	t.Helper()
	data := map[string]map[string]string{"remoteRef": {"key": url.QueryEscape(key), "version": "", "property": ""}}
	for k, v := range secrets {
		data[k] = v
	}
	render := func(s string) string {
		var b bytes.Buffer
		if err := template.Must(template.New("webhooktemplate").Parse(s)).Execute(&b, data); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	method := p.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, render(p.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range p.Headers {
		req.Header.Add(k, render(v))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, res.StatusCode
	}
	var doc any
	if err := yaml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("ESO could not parse the answer: %v", err)
	}
	got, err := jsonpath.Get(p.Result.JSONPath, doc)
	if err != nil {
		t.Fatalf("jsonPath %s: %v\n%s", p.Result.JSONPath, err, body)
	}
	return got, res.StatusCode
}

// recipe reads the SecretStore named name from the shipped recipe, with
// credgate's address put in.
func recipe(t *testing.T, name, addr string) esoWebhook {
	t.Helper()
	raw, err := os.ReadFile("../deploy/kubernetes/external-secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var obj struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
			Spec struct {
				Provider struct {
					Webhook esoWebhook `yaml:"webhook"`
				} `yaml:"provider"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("the recipe: %v", err)
		}
		if obj.Kind == "SecretStore" && obj.Metadata.Name == name {
			w := obj.Spec.Provider.Webhook
			w.URL = strings.Replace(w.URL, "https://credgate.credgate.svc", addr, 1)
			return w
		}
	}
	t.Fatalf("no SecretStore %s in the recipe", name)
	return esoWebhook{}
}

// TestExternalSecretsRecipe: the two SecretStores of the shipped recipe,
// replayed as ESO's webhook provider sends them, give one value (the
// credentials family) and every value of a service (the services family,
// for dataFrom) of the credential a reader may read; a credential that is
// not there is ESO's "no secret" (404).
func TestExternalSecretsRecipe(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, ten := adminWithService(t, a, "stripe_production")
	key := secret("sk_live_" + randHex(10))
	a.mustCreateCredential(tok, map[string]any{"integrationId": "stripe_production", "credentialName": "live", "authType": "api_key", "apiKey": key})
	reader := token(t, "eso", ten, "credential_reader")
	auth := map[string]map[string]string{"credgate": {"token": reader}}

	one := recipe(t, "credgate-value", a.url)
	got, status := esoFetch(t, one, "stripe_production", auth)
	if status != 200 || got != key {
		t.Fatalf("the value: %d %v", status, got)
	}
	if _, status := esoFetch(t, one, "nope", auth); status != http.StatusNotFound {
		t.Fatalf("a missing credential: %d, want ESO's no-secret 404", status)
	}
	all := recipe(t, "credgate-service", a.url)
	got, status = esoFetch(t, all, "stripe_production", auth)
	m, ok := got.(map[string]any)
	if status != 200 || !ok || m["api_key"] != key {
		t.Fatalf("the service's values: %d %v", status, got)
	}
	// A token that may not read values gets nothing.
	if _, status := esoFetch(t, one, "stripe_production", map[string]map[string]string{"credgate": {"token": token(t, "vic", ten, "integration_viewer")}}); status != http.StatusForbidden {
		t.Fatalf("a viewer's token: %d", status)
	}
}
