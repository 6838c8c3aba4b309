package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// envelope is the credentials family's answer shape:
// {"success", "message", "data", "timestamp"}, or with "error" instead of
// "data" when it failed.
type envelope struct {
	Success   bool               `json:"success"`
	Message   string             `json:"message,omitempty"`
	Data      any                `json:"data,omitempty"`
	Error     *envelopeErrorBody `json:"error,omitempty"`
	Timestamp string             `json:"timestamp"`
}

// warningsKey is where a handler leaves what its success answer warns of
// (a URL kept that cannot be called now); the envelope carries them as
// "warnings".
const warningsKey = "credgate.warnings"

// warn adds w (a sentence naming its field) to the answer's warnings.
func warn(c *gin.Context, w string) {
	if w == "" {
		return
	}
	ws, _ := c.Get(warningsKey)
	list, _ := ws.([]string)
	c.Set(warningsKey, append(list, w))
}

// respondPage answers one page of a credentials-family listing: the
// envelope with nextCursor beside data when there is a next page.
func respondPage(c *gin.Context, message string, data any, next string) {
	writeEnvelope(c, http.StatusOK, message, data, next)
}

// respond answers a credentials-family success. The envelope is written
// around data's own encoding, so that data (a credential view) is encoded
// once: this is every credential read's answer.
func respond(c *gin.Context, status int, message string, data any) {
	writeEnvelope(c, status, message, data, "")
}

func writeEnvelope(c *gin.Context, status int, message string, data any, next string) {
	if v, ok := data.(*credentialView); ok {
		c.Set(answeredKey, v) // a pointer already: nothing is copied for the log
	}
	var body []byte
	var err error
	if m, ok := data.(json.Marshaler); ok {
		body, err = m.MarshalJSON() // compact already: not parsed again
	} else {
		body, err = marshal(data)
	}
	if err != nil {
		fail(c, &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: err})
		return
	}
	msg, _ := marshal(message)
	b := make([]byte, 0, len(body)+len(msg)+64)
	b = append(b, `{"success":true,"message":`...)
	b = append(b, msg...)
	b = append(b, `,"data":`...)
	b = append(b, body...)
	if ws, ok := c.Get(warningsKey); ok {
		list, _ := marshal(ws)
		b = append(b, `,"warnings":`...)
		b = append(b, list...)
	}
	if next != "" {
		cur, _ := marshal(next)
		b = append(b, `,"nextCursor":`...)
		b = append(b, cur...)
	}
	b = append(b, `,"timestamp":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `"}`...)
	c.Data(status, "application/json; charset=utf-8", b)
}

// timestamp is the envelope's timestamp: now, RFC 3339 in UTC.
func timestamp() string { return time.Now().UTC().Format(time.RFC3339) }
