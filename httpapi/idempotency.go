package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/credgate/credgate"
)

// IdempotencyStore keeps the answers of POSTs sent with an Idempotency-Key
// (vaultstore.Store), per caller and key.
type IdempotencyStore interface {
	// ClaimIdempotency returns the answer kept for the key (to replay),
	// or nil when holder is to run the request; IDEMPOTENCY_KEY_REUSED
	// for a key of another request. While another request runs the key it
	// waits; IDEMPOTENCY_KEY_IN_USE when ctx ends first.
	ClaimIdempotency(ctx context.Context, key, fingerprint, holder string, stale time.Duration) ([]byte, error)
	// KeepIdempotency keeps answer for the key (nil: forgets the claim,
	// so the next request with the key runs).
	KeepIdempotency(ctx context.Context, key, holder string, answer []byte) error
}

// IdempotencyHeader names the key a client sends with a POST it may repeat
// (the IETF httpapi draft's header, Stripe's habits); ReplayedHeader marks
// an answer given again.
const (
	IdempotencyHeader = "Idempotency-Key"
	ReplayedHeader    = "Idempotent-Replayed"
)

// keptAnswer is what is kept of an answer to replay it: its status, the
// headers that describe what it made, and its body.
type keptAnswer struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header"`
	Body   []byte            `json:"body"`
}

// keptHeaders are the headers a replay gives again.
var keptHeaders = []string{"Content-Type", "Location", "ETag"}

// idempotent makes a POST with an Idempotency-Key happen once for its
// caller: the first request with a key runs and, when it succeeds (2xx),
// its answer is kept for IdempotencyTTL and given again, byte for byte, to
// every later request with the key and the same method, path and body
// (with Idempotent-Replayed: true); the same key with another request is
// 422 IDEMPOTENCY_KEY_REUSED. Requests that come while the first runs wait
// for its answer (until their deadline: then 409 IDEMPOTENCY_KEY_IN_USE).
// A request that failed (4xx, 5xx) is not kept: the next one with the key
// runs again. Keys are the caller's (issuer and subject) within its tenant.
func idempotent(st IdempotencyStore, requestTimeout time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		key := c.GetHeader(IdempotencyHeader)
		if key == "" || st == nil {
			c.Next()
			return
		}
		if !validIdempotencyKey(key) {
			fail(c, credgate.Errorf(credgate.EInvalidRequest, "the Idempotency-Key header must be 1 to 255 printable ASCII characters"))
			return
		}
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			fail(c, credgate.Errorf(credgate.EPayloadTooLarge, "the request body could not be read whole"))
			return
		}
		c.Request.Body = io.NopCloser(bytes.NewReader(body))
		h := sha256.New()
		for _, part := range []string{c.Request.Method, c.Request.URL.Path, c.Request.URL.RawQuery} {
			h.Write([]byte(part))
			h.Write([]byte{0})
		}
		h.Write(body)
		fingerprint := hex.EncodeToString(h.Sum(nil))
		holder := uuid.NewString()
		ctx := c.Request.Context()
		// A holder older than a request can live has died: its claim lapses.
		stale := requestTimeout + 5*time.Second
		kept, err := st.ClaimIdempotency(ctx, key, fingerprint, holder, stale)
		switch {
		case err != nil:
			fail(c, err)
			return
		case kept != nil:
			replay(c, kept)
			return
		}
		rec := &recordingWriter{ResponseWriter: c.Writer}
		c.Writer = rec
		c.Next()
		var answer []byte // nil: not kept
		if st := rec.Status(); st >= 200 && st < 300 && len(c.Errors) == 0 {
			a := keptAnswer{Status: st, Header: map[string]string{}, Body: rec.body.Bytes()}
			for _, name := range keptHeaders {
				if v := rec.Header().Get(name); v != "" {
					a.Header[name] = v
				}
			}
			answer, _ = json.Marshal(a)
		}
		// The answer is given already: keeping it must not depend on the
		// request's deadline.
		keepCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.KeepIdempotency(keepCtx, key, holder, answer)
	}
}

// replay gives a kept answer again.
func replay(c *gin.Context, kept []byte) {
	var a keptAnswer
	if err := json.Unmarshal(kept, &a); err != nil || a.Status == 0 {
		fail(c, credgate.Errorf(credgate.EInternal, "internal error"))
		return
	}
	for name, v := range a.Header {
		c.Header(name, v)
	}
	c.Header(ReplayedHeader, "true")
	c.Status(a.Status)
	_, _ = c.Writer.Write(a.Body)
	c.Abort()
}

// idempotencyIDs is the UUID namespace of ids made from Idempotency-Keys.
var idempotencyIDs = uuid.MustParse("5f1c6a4e-2b7d-4c3a-9e0f-8d2b1a6c4e7f")

// idempotentCredentialID is the id a credential created with key by the
// caller in ctx gets: the same for every try with the key, another for
// every other caller or key.
func idempotentCredentialID(ctx context.Context, key string) string {
	p := credgate.PrincipalFrom(ctx)
	return "cred-" + uuid.NewSHA1(idempotencyIDs, []byte(p.Issuer+"\x00"+p.Subject+"\x00"+p.Tenant+"\x00"+key)).String()
}

// validIdempotencyKey: 1 to 255 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := range len(k) {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// recordingWriter keeps a copy of what is written.
type recordingWriter struct {
	gin.ResponseWriter
	body bytes.Buffer
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *recordingWriter) WriteString(s string) (int, error) {
	w.body.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}
