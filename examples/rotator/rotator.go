// Package rotator is an example rotator for credgate, with the fake
// provider it rotates keys at: what a team copies to write one for Stripe,
// SendGrid or AWS IAM keys. credgate calls a rotator with a signed POST
// (Standard Webhooks) at each step of a rotation:
//
//   - create: mint a new key at the provider and answer it as
//     {"values": {"apiKey": "…"}}. The same rotationId must get the same
//     key: credgate repeats a step it could not record.
//   - test: check that the new key (data.values) works at the provider;
//     answer 2xx if it does, 422 if it does not (credgate then drops it
//     and keeps the current one).
//   - finish: revoke the previous key (data.values) at the provider,
//     after credgate stopped serving it. A key already gone is done.
//
// Every request is verified with the Standard Webhooks library before
// anything is done: a rotator mints and revokes keys, so an unsigned or
// stale request is refused (401).
package rotator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Request is what credgate sends at each step.
type Request struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		RotationID    string            `json:"rotationId"`
		Step          string            `json:"step"`
		Tenant        string            `json:"tenant"`
		IntegrationID string            `json:"integrationId"`
		CredentialID  string            `json:"credentialId"`
		AuthType      string            `json:"authType"`
		Version       int               `json:"version"`
		Values        map[string]string `json:"values"`
		CustomFields  map[string]string `json:"customFields,omitempty"`
	} `json:"data"`
}

// Rotator answers credgate's calls for keys of a Provider.
type Rotator struct {
	provider string // the provider's base URL
	client   *http.Client

	mu       sync.Mutex
	verifier *standardwebhooks.Webhook
	minted   map[string]string // rotationId -> key: create is idempotent
}

// New returns a rotator for the provider at providerURL. It refuses every
// request until SetSecret gives it the secret credgate showed when the
// rotator was registered.
func New(providerURL string) *Rotator {
	return &Rotator{provider: providerURL, client: &http.Client{Timeout: 10 * time.Second}, minted: map[string]string{}}
}

// SetSecret sets the signing secret (whsec_…) requests are verified with.
func (r *Rotator) SetSecret(secret string) error {
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.verifier = v
	return nil
}

// ServeHTTP answers one step.
func (r *Rotator) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	v := r.verifier
	r.mu.Unlock()
	if v == nil || v.Verify(body, req.Header) != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var q Request
	if err := json.Unmarshal(body, &q); err != nil {
		http.Error(w, "not JSON", http.StatusBadRequest)
		return
	}
	switch q.Data.Step {
	case "create":
		key, err := r.create(q.Data.RotationID)
		if err != nil {
			http.Error(w, "the provider failed", http.StatusBadGateway) // retried
			return
		}
		writeJSON(w, map[string]any{"values": map[string]string{"apiKey": key}})
	case "test":
		ok, err := r.check(q.Data.Values["apiKey"])
		switch {
		case err != nil:
			http.Error(w, "the provider failed", http.StatusBadGateway)
		case !ok:
			http.Error(w, "the new key does not work", http.StatusUnprocessableEntity)
		default:
			writeJSON(w, map[string]any{"ok": true})
		}
	case "finish":
		if err := r.revoke(q.Data.Values["apiKey"]); err != nil {
			http.Error(w, "the provider failed", http.StatusBadGateway)
			return
		}
		writeJSON(w, map[string]any{"ok": true})
	default:
		http.Error(w, "unknown step", http.StatusUnprocessableEntity)
	}
}

func (r *Rotator) create(rotation string) (string, error) {
	r.mu.Lock()
	key, ok := r.minted[rotation]
	r.mu.Unlock()
	if ok {
		return key, nil // a repeat: the key minted the first time
	}
	res, err := r.client.Post(r.provider+"/keys", "application/json", nil)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var k struct {
		Key string `json:"key"`
	}
	if res.StatusCode != http.StatusCreated || json.NewDecoder(res.Body).Decode(&k) != nil || k.Key == "" {
		return "", fmt.Errorf("the provider answered %d", res.StatusCode)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if first, ok := r.minted[rotation]; ok {
		return first, nil
	}
	r.minted[rotation] = k.Key
	return k.Key, nil
}

func (r *Rotator) check(key string) (bool, error) {
	req, _ := http.NewRequest(http.MethodGet, r.provider+"/check", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := r.client.Do(req)
	if err != nil {
		return false, err
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK, nil
}

func (r *Rotator) revoke(key string) error {
	if key == "" {
		return nil // nothing left to revoke
	}
	req, _ := http.NewRequest(http.MethodDelete, r.provider+"/keys/"+key, nil)
	res, err := r.client.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusNotFound {
		return fmt.Errorf("the provider answered %d", res.StatusCode)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(v)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.Bytes())
}

// Provider is a fake provider of API keys: POST /keys mints one, DELETE
// /keys/{key} revokes it, GET /check with "Authorization: Bearer <key>"
// answers 200 for a live key and 401 otherwise.
type Provider struct {
	mu   sync.Mutex
	keys map[string]bool // key -> live
	n    int
}

// NewProvider returns a provider that knows keys (live).
func NewProvider(keys ...string) *Provider {
	p := &Provider{keys: map[string]bool{}}
	for _, k := range keys {
		p.keys[k] = true
	}
	return p
}

// Live reports whether key is live at the provider.
func (p *Provider) Live(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[key]
}

// Disable makes key stop working without revoking it (a test of the new
// key then fails).
func (p *Provider) Disable(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[key] = false
}

// Minted counts the keys minted.
func (p *Provider) Minted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// ServeHTTP is the provider's API.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/keys":
		p.n++
		key := fmt.Sprintf("pk_%d_%d", time.Now().UnixNano(), p.n)
		p.keys[key] = true
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"key": key})
	case r.Method == http.MethodDelete && len(r.URL.Path) > len("/keys/") && r.URL.Path[:len("/keys/")] == "/keys/":
		key := r.URL.Path[len("/keys/"):]
		if _, ok := p.keys[key]; !ok {
			http.NotFound(w, r)
			return
		}
		delete(p.keys, key)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && r.URL.Path == "/check":
		key, ok := bytes.CutPrefix([]byte(r.Header.Get("Authorization")), []byte("Bearer "))
		if !ok || !p.keys[string(key)] {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		http.NotFound(w, r)
	}
}
