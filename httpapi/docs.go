package httpapi

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/gin-gonic/gin"
	"sigs.k8s.io/yaml"
)

// openAPIYAML is the API's OpenAPI 3 document; a test keeps it true to the
// routes and to the answers the test suite sees.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// swaggerUI is swagger-ui-dist, pinned by `make swagger-ui`, embedded so
// /docs needs no CDN at run time.
//
//go:embed swaggerui/dist
var swaggerUI embed.FS

// OpenAPIDocument returns the OpenAPI document as JSON: openapi.yaml, with
// what every /api/v1 operation shares added (completeDocument).
func OpenAPIDocument() ([]byte, error) {
	j, err := yaml.YAMLToJSON(openAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if !json.Valid(j) {
		return nil, fmt.Errorf("openapi.yaml does not convert to JSON")
	}
	if j, err = completeDocument(j); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return j, nil
}

// docsPage is Swagger UI's page: the bundle, this API's document, and
// bearer authorization kept across reloads.
const docsPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>credgate API</title>
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: true
});
</script>
</body>
</html>
`

// docsRoutes serves /openapi.json and Swagger UI at /docs.
func docsRoutes(r *gin.Engine) error {
	doc, err := OpenAPIDocument()
	if err != nil {
		return err
	}
	assets, err := fs.Sub(swaggerUI, "swaggerui/dist")
	if err != nil {
		return err
	}
	r.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", doc) })
	r.GET("/docs", func(c *gin.Context) {
		c.Header("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(docsPage))
	})
	files := http.FileServer(http.FS(assets))
	r.GET("/docs/:file", func(c *gin.Context) {
		if _, err := fs.Stat(assets, c.Param("file")); err != nil {
			c.Status(http.StatusNotFound)
			return
		}
		c.Header("Cache-Control", "public, max-age=86400")
		c.Request.URL.Path = "/" + c.Param("file")
		files.ServeHTTP(c.Writer, c.Request)
	})
	return nil
}
