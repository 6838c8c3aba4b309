// Package oapigen generates a Go client for credgate's API with
// oapi-codegen from the OpenAPI document credgate serves, exactly as a
// client team would generate one. It exists to prove the document: the
// httpapi tests generate the client, compile it and run the README's walk
// through it against a real stack (TestGeneratedGoClient). Applications use
// package client instead.
package oapigen

import (
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/oapi-codegen/oapi-codegen/v2/pkg/codegen"

	"github.com/credgate/credgate/httpapi"
)

// GoClient returns the source of oapi-codegen's models and client
// (ClientWithResponses: typed bodies and headers per status) for the served
// document, in package pkg. Nullable fields are nullable.Nullable, so that
// a merge patch can send null.
func GoClient(pkg string) ([]byte, error) {
	doc, err := httpapi.OpenAPIDocument()
	if err != nil {
		return nil, err
	}
	spec, err := openapi3.NewLoader().LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load the served document: %w", err)
	}
	if err := spec.Validate(openapi3.NewLoader().Context); err != nil {
		return nil, fmt.Errorf("the served document is not valid OpenAPI: %w", err)
	}
	src, err := codegen.Generate(spec, codegen.Configuration{
		PackageName:   pkg,
		Generate:      codegen.GenerateOptions{Client: true, Models: true},
		OutputOptions: codegen.OutputOptions{NullableType: true},
	})
	if err != nil {
		return nil, fmt.Errorf("oapi-codegen: %w", err)
	}
	return []byte(src), nil
}
