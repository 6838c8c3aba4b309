package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// What every /api/v1 operation shares is said here once, and added to
// each operation of the served document (openapi.yaml says only what is
// particular to an operation): the optional x-tenantid and realmname
// headers, the headers of its answers, and an error response of its
// family for each status it can answer, so that generated clients get a
// typed 404, 409 or 429 rather than only "default".

// upstreamOps are the operations that may call a token endpoint (a due
// client-credentials token minted on read, an OAuth2 refresh on rotate),
// and so answer 502 UPSTREAM_ERROR.
var upstreamOps = map[string]bool{"getCredential": true, "getServiceCredentials": true, "rotateCredential": true}

// errorStatuses are the statuses op (of method, at path) can answer with
// an error: what the middleware may refuse for any authenticated request,
// and what its path, body and parameters add.
func errorStatuses(path, method string, op map[string]any) []int {
	s := []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests, http.StatusServiceUnavailable}
	if strings.Contains(path, "{") {
		s = append(s, http.StatusNotFound)
	}
	if _, ok := op["requestBody"]; ok {
		s = append(s, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
	}
	if method != "get" {
		s = append(s, http.StatusConflict) // a stale If-Match, an id taken, a key in use
	}
	if hasParam(op, "IdempotencyKey") {
		s = append(s, http.StatusUnprocessableEntity)
	}
	if id, _ := op["operationId"].(string); upstreamOps[id] {
		s = append(s, http.StatusBadGateway)
	}
	return s
}

func hasParam(op map[string]any, name string) bool {
	ps, _ := op["parameters"].([]any)
	for _, p := range ps {
		if m, _ := p.(map[string]any); m["$ref"] == "#/components/parameters/"+name {
			return true
		}
	}
	return false
}

func ref(kind, name string) map[string]any {
	return map[string]any{"$ref": "#/components/" + kind + "/" + name}
}

// completeDocument adds what every /api/v1 operation shares to the JSON
// document j.
func completeDocument(j []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	var doc map[string]any
	if err := d.Decode(&doc); err != nil {
		return nil, err
	}
	paths, _ := doc["paths"].(map[string]any)
	for path, item := range paths {
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		for method, v := range item.(map[string]any) {
			op, ok := v.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			ps, _ := op["parameters"].([]any)
			op["parameters"] = append(ps, ref("parameters", "TenantID"), ref("parameters", "RealmName"))
			responses := op["responses"].(map[string]any)
			family := "Envelope"
			if def, _ := responses["default"].(map[string]any); def["$ref"] == "#/components/responses/ServiceError" {
				family = "Service"
			}
			for _, r := range responses {
				r, _ := r.(map[string]any)
				if r == nil || r["$ref"] != nil {
					continue
				}
				h, _ := r["headers"].(map[string]any)
				if h == nil {
					h = map[string]any{}
					r["headers"] = h
				}
				for _, name := range []string{"X-Request-Id", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
					h[name] = ref("headers", name)
				}
			}
			for _, status := range errorStatuses(path, method, op) {
				key := strconv.Itoa(status)
				if _, ok := responses[key]; ok {
					continue
				}
				if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
					responses[key] = ref("responses", family+"RetryLater")
				} else {
					responses[key] = ref("responses", family+"Error")
				}
			}
		}
	}
	return json.Marshal(doc)
}
