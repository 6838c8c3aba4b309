package httpapi

import (
	"errors"
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
	a := newAnswer()
	defer a.release()
	a.WriteString(`{"success":true,"message":`)
	err := a.value(message)
	a.WriteString(`,"data":`)
	switch data := data.(type) {
	case *credentialView:
		c.Set(answeredKey, data) // a pointer already: nothing is copied for the log
		err = errors.Join(err, data.appendTo(a))
	case []*credentialView: // a page: each view written in place
		if data == nil {
			a.WriteString("null")
			break
		}
		a.WriteByte('[')
		for i, v := range data {
			if i > 0 {
				a.WriteByte(',')
			}
			err = errors.Join(err, v.appendTo(a))
		}
		a.WriteByte(']')
	default:
		err = errors.Join(err, a.value(data))
	}
	if ws, ok := c.Get(warningsKey); ok {
		a.WriteString(`,"warnings":`)
		err = errors.Join(err, a.value(ws))
	}
	if next != "" {
		a.WriteString(`,"nextCursor":`)
		err = errors.Join(err, a.value(next))
	}
	if err != nil {
		fail(c, &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: err})
		return
	}
	a.WriteString(`,"timestamp":"`)
	a.Write(time.Now().UTC().AppendFormat(a.AvailableBuffer(), time.RFC3339))
	a.WriteString(`"}`)
	c.Data(status, "application/json; charset=utf-8", a.Bytes()) // written through before a is released
}

// timestamp is the envelope's timestamp: now, RFC 3339 in UTC.
func timestamp() string { return time.Now().UTC().Format(time.RFC3339) }
