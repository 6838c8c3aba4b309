package httpapi

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// The query parameters each route takes are the OpenAPI document's: the
// document is the one definition, and an unknown parameter (a typo such as
// integration_id, which would otherwise silently select everything) is 400
// INVALID_PARAMETER naming it.

// queryParams maps "METHOD /path/{param}" to the query parameters the
// document gives the operation.
type queryParams map[string][]string

// documentedQueries reads the query parameters of every operation of the
// OpenAPI document doc (JSON), $refs to components resolved.
func documentedQueries(doc []byte) (queryParams, error) {
	type param struct {
		Ref  string `json:"$ref"`
		Name string `json:"name"`
		In   string `json:"in"`
	}
	var d struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Parameters map[string]param `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	resolve := func(p param) param {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			return d.Components.Parameters[name]
		}
		return p
	}
	out := queryParams{}
	for path, item := range d.Paths {
		var shared []param
		if raw, ok := item["parameters"]; ok {
			_ = json.Unmarshal(raw, &shared)
		}
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op struct {
				Parameters []param `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("openapi document: %s %s: %w", method, path, err)
			}
			names := []string{}
			for _, p := range append(slices.Clone(shared), op.Parameters...) {
				if p = resolve(p); p.In == "query" {
					names = append(names, p.Name)
				}
			}
			sort.Strings(names)
			out[strings.ToUpper(method)+" "+path] = names
		}
	}
	return out, nil
}

// ginToOpenAPI turns gin's /a/:id into the document's /a/{id}.
func ginToOpenAPI(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if name, ok := strings.CutPrefix(p, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

// knownQuery refuses a query parameter the route's operation does not
// document. The providers' redirect (GET /oauth/callback) is left alone:
// providers add parameters of their own (session_state, ...).
func knownQuery(params queryParams) gin.HandlerFunc {
	return func(c *gin.Context) {
		route := c.FullPath()
		allowed, ok := params[c.Request.Method+" "+ginToOpenAPI(route)]
		if !ok || route == "/oauth/callback" || c.Request.URL.RawQuery == "" {
			c.Next()
			return
		}
		var unknown []string
		for name := range c.Request.URL.Query() {
			if !slices.Contains(allowed, name) {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			takes := "no query parameters"
			if len(allowed) > 0 {
				takes = strings.Join(allowed, ", ")
			}
			fail(c, credgate.Errorf(credgate.EInvalidParameter, "unknown query parameter %s; this route takes %s", strings.Join(unknown, ", "), takes))
			return
		}
		c.Next()
	}
}

// jsonBody refuses a body declared as something other than JSON (415): a
// body whose Content-Type names another media type is not read. A body
// without a Content-Type is read as JSON.
func jsonBody() gin.HandlerFunc {
	return func(c *gin.Context) {
		ct := c.GetHeader("Content-Type")
		if ct == "" || c.Request.ContentLength == 0 || c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
			c.Next()
			return
		}
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			fail(c, credgate.Errorf(credgate.EUnsupportedMediaType, "the body must be JSON, sent as Content-Type: application/json, not %q", ct))
			return
		}
		c.Next()
	}
}
