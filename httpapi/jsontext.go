package httpapi

import (
	"bytes"
	"sync"

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

// answer is an answer being written: a buffer and an encoder into it
// (marshal's encoding), kept in a pool, so that an answer is encoded once,
// in place, into memory that serves the next answer too.
type answer struct {
	bytes.Buffer
	enc *gojson.Encoder
}

// maxPooledAnswer is the largest answer whose buffer goes back to the
// pool: a large page's buffer is left to the collector.
const maxPooledAnswer = 64 << 10

var answers = sync.Pool{New: func() any {
	a := &answer{}
	a.enc = gojson.NewEncoder(&a.Buffer)
	a.enc.SetEscapeHTML(false)
	return a
}}

func newAnswer() *answer { return answers.Get().(*answer) }

// release returns a to the pool: what it held must not be used after.
func (a *answer) release() {
	if a.Cap() > maxPooledAnswer {
		return
	}
	a.Reset()
	answers.Put(a)
}

// value appends v encoded as marshal encodes it; nothing when it fails.
func (a *answer) value(v any) error {
	if err := a.enc.Encode(v); err != nil {
		return err
	}
	a.Truncate(a.Len() - 1) // the newline Encode ends with
	return nil
}

// writeJSON answers v as JSON with status.
func writeJSON(c *gin.Context, status int, v any) {
	a := newAnswer()
	defer a.release()
	if err := a.value(v); err != nil {
		fail(c, &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: err})
		return
	}
	c.Data(status, "application/json; charset=utf-8", a.Bytes()) // written through before a is released
}
