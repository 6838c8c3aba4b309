package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/httpapi"
	"github.com/credgate/credgate/outbound"
	"github.com/credgate/credgate/tokenrefresh"
)

// spec is the served document, loaded and validated by kin-openapi.
type spec struct {
	doc    *openapi3.T
	router routers.Router

	mu       sync.Mutex
	checked  int
	failures []string
}

func loadSpec() (*spec, error) {
	j, err := httpapi.OpenAPIDocument()
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(j)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is not valid: %w", err)
	}
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &spec{doc: doc, router: router}, nil
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// validating checks every answer against the document: its status must be
// documented (or fall under default) and its body must match the schema.
// Requests that match no documented path (malformed ids) are not checked.
func (sp *spec) validating(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, status: 200}
		next.ServeHTTP(rec, r)
		route, params, err := sp.router.FindRoute(r)
		if err != nil {
			return
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
			Status:                 rec.status,
			Header:                 rec.Header(),
			Body:                   io.NopCloser(bytes.NewReader(rec.body.Bytes())),
			Options:                &openapi3filter.Options{IncludeResponseStatus: true},
		}
		err = openapi3filter.ValidateResponse(r.Context(), in)
		if err == nil {
			err = noNulls(rec.body.Bytes())
		}
		sp.mu.Lock()
		defer sp.mu.Unlock()
		sp.checked++
		if err != nil {
			sp.failures = append(sp.failures, fmt.Sprintf("%s %s -> %d: %v", r.Method, r.URL.Path, rec.status, err))
		}
	})
}

// event checks a webhook delivery's body against the document's
// WebhookEvent, the schema of createWebhook's callback.
func (sp *spec) event(body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	if err := sp.doc.Components.Schemas["WebhookEvent"].Value.VisitJSON(v); err != nil {
		return err
	}
	return noNulls(body)
}

// noNulls fails when a JSON answer holds null anywhere but inside what a
// client or a token supplied (metadata, claims): optional fields are left
// out, never null, because typed clients (a TypeScript "x?: string", a Go
// string) do not take null for them.
func noNulls(body []byte) error {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return nil // not JSON: the schema check covers it
	}
	var walk func(v any, at string) error
	walk = func(v any, at string) error {
		switch t := v.(type) {
		case nil:
			return fmt.Errorf("null at %s", at)
		case map[string]any:
			for k, e := range t {
				if k == "metadata" || k == "claims" {
					continue
				}
				if err := walk(e, at+"/"+k); err != nil {
					return err
				}
			}
		case []any:
			for i, e := range t {
				if err := walk(e, fmt.Sprintf("%s/%d", at, i)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(v, "")
}

// report is called after the suite: every answer must have validated.
func (sp *spec) report() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.failures) > 0 {
		n := min(len(sp.failures), 10)
		return fmt.Errorf("%d of %d answers do not match the OpenAPI document, e.g.:\n%s", len(sp.failures), sp.checked, strings.Join(sp.failures[:n], "\n"))
	}
	fmt.Printf("openapi check: %d answers match the document\n", sp.checked)
	return nil
}

// noConnect serves no connect: for listing the routes.
type noConnect struct{}

func (noConnect) Start(context.Context, string, string) (*credgate.ConnectStart, error) {
	return nil, credgate.Errorf(credgate.ENotFound, "no")
}

func (noConnect) Callback(context.Context, url.Values) credgate.ConnectResult {
	return credgate.ConnectResult{Err: credgate.Errorf(credgate.ENotFound, "no")}
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z]+)`)

func TestOpenAPIDocumentsEveryRouteAndOnlyThose(t *testing.T) {
	a := newAPI(t, apiOptions{})
	h, err := httpapi.New(httpapi.Options{Services: a.store, Credentials: a.store, Primary: a.store, Rotator: a.store, Webhooks: a.store, Rotators: a.store, Locator: a.store, Usage: a.store,
		Connect: noConnect{}, Tokens: a.store, Grants: grantStore{a.store, a.grants}, Refresh: tokenrefresh.Grant(nil), Endpoints: mustGuard(t), Auth: noAuth{}, Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, r := range h.(*gin.Engine).Routes() {
		served[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	documented := map[string]bool{}
	for path, item := range s.spec.doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("served but not documented: %v\ndocumented but not served: %v", missing, extra)
	}
	if len(served) < 20 {
		t.Fatalf("only %d routes: the comparison proves little", len(served))
	}
}

func TestOpenAPIAndDocsAreServed(t *testing.T) {
	a := newAPI(t, apiOptions{})
	r := a.do("GET", "/openapi.json", "", nil)
	if r.Status != 200 || r.Body["openapi"] != "3.0.3" {
		t.Fatalf("/openapi.json: %d", r.Status)
	}
	page := a.do("GET", "/docs", "", nil)
	if page.Status != 200 || !strings.Contains(string(page.Raw), "/docs/swagger-ui-bundle.js") || strings.Contains(string(page.Raw), "://") && strings.Contains(string(page.Raw), "cdn") {
		t.Fatalf("/docs: %d %s", page.Status, page.Raw)
	}
	for _, asset := range []string{"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"} {
		if r := a.do("GET", asset, "", nil); r.Status != 200 || len(r.Raw) < 10000 {
			t.Fatalf("%s: %d, %d bytes", asset, r.Status, len(r.Raw))
		}
	}
	if r := a.do("GET", "/docs/..%2Fopenapi.yaml", "", nil); r.Status == 200 {
		t.Fatal("an asset path escapes the embedded folder")
	}
}

func mustGuard(t *testing.T) *outbound.Guard {
	t.Helper()
	g, err := outbound.New(outbound.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}
