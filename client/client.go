// Package client is a Go client of credgate's HTTP API for the
// applications and scripts that use credentials: typed calls of both
// route families, errors as a typed value (*Error, for errors.As), If-Match,
// retries with backoff for what is safe to retry (reads; 429 after its
// Retry-After; 503), and a token source (a static token, a file re-read
// when it changes, or any golang.org/x/oauth2 TokenSource).
//
// It imports only the standard library, golang.org/x/oauth2 and
// credgate's domain package (which imports google/uuid), never the
// server's dependencies.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// TokenSource gives the bearer token of each request.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a token that does not change.
type StaticToken string

// Token answers t.
func (t StaticToken) Token(context.Context) (string, error) {
	if t == "" {
		return "", errors.New("credgate client: no token")
	}
	return string(t), nil
}

// FileToken reads the token from a file, again whenever the file changes
// (a token a sidecar or Vault Agent keeps fresh).
type FileToken struct {
	Path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	token   string
}

// Token answers the file's token, read again when its modification time
// or size changed.
func (f *FileToken) Token(context.Context) (string, error) {
	st, err := os.Stat(f.Path)
	if err != nil {
		return "", fmt.Errorf("credgate client: the token file: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.token != "" && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.token, nil
	}
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("credgate client: the token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("credgate client: the token file %s is empty", f.Path)
	}
	f.token, f.modTime, f.size = tok, st.ModTime(), st.Size()
	return tok, nil
}

// OAuth2Token adapts an oauth2.TokenSource (client credentials at an
// identity provider, a workload identity) to a TokenSource.
func OAuth2Token(ts oauth2.TokenSource) TokenSource { return oauthSource{ts} }

type oauthSource struct{ ts oauth2.TokenSource }

func (o oauthSource) Token(context.Context) (string, error) {
	t, err := o.ts.Token()
	if err != nil {
		return "", fmt.Errorf("credgate client: %w", err)
	}
	return t.AccessToken, nil
}

// Options configures a Client.
type Options struct {
	// Addr is credgate's base URL, https://credgate.example.com.
	Addr   string
	Tokens TokenSource
	// Tenant, when set, is sent as x-tenantid (it must agree with the
	// token's tenant).
	Tenant string
	// HTTPClient makes the requests (default: one with a 30 s timeout).
	HTTPClient *http.Client
	// Retries bounds the retries of a retryable failure (default 3; -1:
	// none); Backoff is the first pause, doubled each time (default
	// 200 ms), unless the answer's Retry-After says longer.
	Retries int
	Backoff time.Duration
	// UserAgent is sent with each request.
	UserAgent string
}

// Client calls credgate. It is safe for concurrent use.
type Client struct {
	o    Options
	base *url.URL
}

// New returns a Client.
func New(o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(o.Addr, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("credgate client: Addr must be an absolute http(s) URL, not %q", o.Addr)
	}
	if o.Tokens == nil {
		return nil, errors.New("credgate client: Tokens is required")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	switch {
	case o.Retries == 0:
		o.Retries = 3
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	if o.UserAgent == "" {
		o.UserAgent = "credgate-go-client/1"
	}
	return &Client{o: o, base: u}, nil
}

// Error is an error answer of credgate: its code (credgate's error codes:
// CREDENTIAL_NOT_FOUND, VERSION_CONFLICT, ...), message, details, the
// fields a validation named, the HTTP status and the request id to quote
// to an operator.
type Error struct {
	Status    int
	Code      string
	Message   string
	Details   string
	Fields    map[string]string
	RequestID string
	// RetryAfter is what a 429 or 503 asked to wait.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := e.Details
	if msg == "" {
		msg = e.Message
	}
	return fmt.Sprintf("credgate: %d %s: %s", e.Status, e.Code, msg)
}

// IsCode reports whether err is a credgate error answer with code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// request is one call.
type request struct {
	method, path string
	query        url.Values
	body         any
	ifMatch      int // > 0: If-Match
	idempotency  string
}

// Version is a record's version, as ETag and If-Match carry it.
type Version int

// Response is what a call learned besides its data.
type Response struct {
	Status    int
	ETag      Version
	RequestID string
	Message   string
}

// do sends r and decodes the answer's data into out (nil: ignored). Reads
// are retried after a 429, a 503 or a failed connection; writes only
// after a 429 (the server did nothing), or when they carry an
// Idempotency-Key.
func (c *Client) do(ctx context.Context, r request, out any) (*Response, error) {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return nil, fmt.Errorf("credgate client: %w", err)
		}
	}
	safe := r.method == http.MethodGet || r.method == http.MethodHead || r.idempotency != ""
	pause := c.o.Backoff
	for attempt := 0; ; attempt++ {
		res, err := c.once(ctx, r, body, out)
		var e *Error
		retry := false
		switch {
		case err == nil:
			return res, nil
		case errors.As(err, &e):
			retry = e.Status == http.StatusTooManyRequests || (safe && e.Status == http.StatusServiceUnavailable)
			pause = max(pause, e.RetryAfter)
		case ctx.Err() == nil && safe:
			var ue *url.Error
			retry = errors.As(err, &ue)
		}
		if !retry || attempt >= c.o.Retries {
			return res, err
		}
		t := time.NewTimer(pause + time.Duration(rand.Int64N(int64(pause/5)+1)))
		select {
		case <-ctx.Done():
			t.Stop()
			return res, err
		case <-t.C:
		}
		pause *= 2
	}
}

func (c *Client) once(ctx context.Context, r request, body []byte, out any) (*Response, error) {
	u := *c.base
	u.Path = c.base.Path + r.path
	u.RawPath = ""
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("credgate client: %w", err)
	}
	tok, err := c.o.Tokens.Token(ctx)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.o.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.o.Tenant != "" {
		req.Header.Set("x-tenantid", c.o.Tenant)
	}
	if r.ifMatch > 0 {
		req.Header.Set("If-Match", strconv.Quote(strconv.Itoa(r.ifMatch)))
	}
	if r.idempotency != "" {
		req.Header.Set("Idempotency-Key", r.idempotency)
	}
	res, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return nil, err
	}
	out2 := &Response{Status: res.StatusCode, RequestID: res.Header.Get("X-Request-Id")}
	if v, err := strconv.Unquote(res.Header.Get("ETag")); err == nil {
		n, _ := strconv.Atoi(v)
		out2.ETag = Version(n)
	}
	if res.StatusCode >= 400 {
		return out2, decodeError(res, raw)
	}
	if len(raw) == 0 || res.StatusCode == http.StatusNoContent {
		return out2, nil
	}
	// The credentials family wraps data in an envelope; the services
	// family answers the record itself.
	if strings.HasPrefix(r.path, "/api/v1/services") {
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return out2, fmt.Errorf("credgate client: the answer: %w", err)
			}
		}
		return out2, nil
	}
	var env struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return out2, fmt.Errorf("credgate client: the answer: %w", err)
	}
	out2.Message = env.Message
	if out != nil && len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return out2, fmt.Errorf("credgate client: the answer: %w", err)
		}
	}
	if p, ok := out.(*pageOf); ok {
		p.next = pageCursor(raw)
	}
	return out2, nil
}

// decodeError reads either family's error answer: the services family's
// {"error": {code, message, details: {fields, ...}}} and the credentials
// family's {"error": {code, message, details, fields, ...}}.
func decodeError(res *http.Response, raw []byte) error {
	e := &Error{Status: res.StatusCode, RequestID: res.Header.Get("X-Request-Id")}
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var body struct {
		Error struct {
			Code    string            `json:"code"`
			Message string            `json:"message"`
			Details json.RawMessage   `json:"details"`
			Fields  map[string]string `json:"fields"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) != nil || body.Error.Code == "" {
		e.Code, e.Message = "HTTP_"+strconv.Itoa(res.StatusCode), http.StatusText(res.StatusCode)
		return e
	}
	e.Code, e.Message, e.Fields = body.Error.Code, body.Error.Message, body.Error.Fields
	var text string
	var obj struct {
		Fields map[string]string `json:"fields"`
	}
	switch {
	case json.Unmarshal(body.Error.Details, &text) == nil:
		e.Details = text
	case json.Unmarshal(body.Error.Details, &obj) == nil && obj.Fields != nil:
		e.Fields = obj.Fields
	}
	return e
}
