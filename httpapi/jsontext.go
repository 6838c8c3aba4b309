package httpapi

import (
	"github.com/gin-gonic/gin"
	gojson "github.com/goccy/go-json"

	"github.com/credgate/credgate"
)

// marshal encodes v as JSON without HTML escaping: every answer is JSON,
// never HTML, and a "<" a client stored (or an error text quotes) comes
// back as "<", not "\u003c".
func marshal(v any) ([]byte, error) {
	return gojson.MarshalWithOption(v, gojson.DisableHTMLEscape())
}

// writeJSON answers v as JSON with status.
func writeJSON(c *gin.Context, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		fail(c, &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: err})
		return
	}
	c.Data(status, "application/json; charset=utf-8", b)
}
