package oapigen

import (
	"strings"
	"testing"

	// The generated client imports these; naming them here keeps them in
	// go.mod, whose requirements the scratch module that builds the client
	// (httpapi's TestGeneratedGoClient) copies.
	_ "github.com/oapi-codegen/nullable"
	_ "github.com/oapi-codegen/runtime"
)

// TestGoClientTypesErrorsAndHeaders: what a Go client team relies on is in
// the generated code: typed error bodies per status, typed response
// headers, the tenant header as a parameter, and null in a merge patch.
func TestGoClientTypesErrorsAndHeaders(t *testing.T) {
	src, err := GoClient("oapiclient")
	if err != nil {
		t.Fatal(err)
	}
	code := string(src)
	for _, want := range []string{
		"JSON404 *ServiceError",                 // a service's typed 404
		"JSON409 *ServiceError",                 // a stale If-Match
		"JSON404 *EnvelopeError",                // a credential's typed 404
		"JSON429 *EnvelopeRetryLater",           // rate limited, with Retry-After
		"RetryAfter ",                           // … read as a typed header
		"XRequestId ",                           // every answer's request id
		"ETag ",                                 // records' versions
		"XTenantid *TenantID",                   // seed 002's x-tenantid
		"BaseUrl     nullable.Nullable[string]", // a merge patch may clear it
	} {
		if !strings.Contains(code, want) {
			t.Errorf("the generated client has no %q", want)
		}
	}
}
