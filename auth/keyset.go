package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// signingAlgs are the algorithms credgate accepts. alg=none and the HMAC
// family are absent on purpose: an HMAC "signature" made with a public key
// must never verify.
var signingAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

func algNames() []string {
	out := make([]string, len(signingAlgs))
	for i, a := range signingAlgs {
		out[i] = string(a)
	}
	return out
}

// keySet is an oidc.KeySet over a JWKS URL. Unlike oidc.RemoteKeySet it
// refetches only for a key id it does not know (a bad signature under a known
// key is simply refused) and at most once per minInterval, so a flood of
// tokens with made-up key ids costs the issuer one request per interval.
type keySet struct {
	url         string
	client      *http.Client
	minInterval time.Duration
	now         func() time.Time
	onFetch     func(err error)

	mu        sync.Mutex // held while fetching; guards the fields below
	keys      []jose.JSONWebKey
	lastFetch time.Time
}

func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, signingAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must carry exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID

	keys, fetched := k.snapshot()
	if payload, known, err := verifyWith(jws, kid, keys); known {
		return payload, err
	}
	keys, err = k.refresh(ctx, fetched)
	if err != nil {
		return nil, err
	}
	payload, known, err := verifyWith(jws, kid, keys)
	if !known {
		return nil, fmt.Errorf("no key with id %q", kid)
	}
	return payload, err
}

func (k *keySet) snapshot() ([]jose.JSONWebKey, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, k.lastFetch
}

// verifyWith verifies jws with the key named kid (every key when kid is
// empty). known is false when no key matched the id, which is the only case
// worth a refetch.
func verifyWith(jws *jose.JSONWebSignature, kid string, keys []jose.JSONWebKey) (payload []byte, known bool, err error) {
	for _, key := range keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		known = true
		if p, err := jws.Verify(key.Key); err == nil {
			return p, true, nil
		}
	}
	if known {
		return nil, true, errors.New("signature does not verify")
	}
	return nil, false, nil
}

// refresh fetches the JWKS unless another caller did since seen, or the last
// fetch is younger than minInterval; either way it returns the current keys.
func (k *keySet) refresh(ctx context.Context, seen time.Time) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.lastFetch.Equal(seen) || (!k.lastFetch.IsZero() && k.now().Sub(k.lastFetch) < k.minInterval) {
		return k.keys, nil
	}
	k.lastFetch = k.now()
	keys, err := k.fetch(ctx)
	if k.onFetch != nil {
		k.onFetch(err)
	}
	if err != nil {
		return k.keys, fmt.Errorf("fetching JWKS: %w", err)
	}
	k.keys = keys
	return keys, nil
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS answered %s", resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	return set.Keys, nil
}
