package vaultstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	gojson "github.com/goccy/go-json"
	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/internal/deadline"
	"github.com/credgate/credgate/policy"
)

// session is one request's view of the KV v2 mount: bound to the caller's
// Vault token, the request id and the caller's tenant. Every record
// operation goes through it, so every call is timed, bounded by the store's
// timeout and attributed to the caller in Vault's audit log.
type session struct {
	s             *Store
	tenant, token string
	trace         trace

	once  sync.Once
	bound *api.Client // the Vault client with token and request id, made on first use

	// marked are the marks of the writes this session has begun, by
	// credential, until their data is written: an attempt that lost its
	// check-and-set and is made again is covered by the first one's
	// marks (writeCred).
	mu     sync.Mutex
	marked map[string]string
}

// session returns the caller's session. Errors: UNAUTHORIZED without a
// principal, INSUFFICIENT_PERMISSIONS without a role, BACKEND_UNAVAILABLE.
func (s *Store) session(ctx context.Context) (*session, error) {
	p := credgate.PrincipalFrom(ctx)
	if p == nil {
		return nil, credgate.Errorf(credgate.EUnauthorized, "no verified caller")
	}
	tok, err := s.TokenFor(ctx, p)
	if err != nil {
		return nil, err
	}
	return &session{s: s, tenant: p.Tenant, token: tok, trace: traceOf(ctx)}, nil
}

// client is the Vault API client bound to the caller's token and request.
func (k *session) client() *api.Client {
	k.once.Do(func() { k.bound = bind(k.s.opts.Client, k.token, k.trace) })
	return k.bound
}

func (k *session) kv2() *api.KVv2 { return k.client().KVv2(k.s.opts.Mount) }

// path returns the logical path of name in folder of the session's tenant.
func (k *session) path(folder, name string) string { return policy.Path(k.tenant, folder, name) }

// folder returns the logical path of folder of the session's tenant.
func (k *session) folder(folder string) string { return policy.FolderPath(k.tenant, folder) }

// call runs one Vault call under the store's timeout and reports it to
// Observe as op. Not-found and check-and-set conflicts are answers, not
// failures, for the metrics.
func (k *session) call(ctx context.Context, op string, f func(context.Context) error) error {
	ctx, cancel := deadline.Within(ctx, k.s.opts.Timeout) // armed only if waited on: a read through fetch reads the deadline alone
	defer cancel()
	start := k.s.opts.Now()
	err := f(ctx)
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode >= 500 && re.StatusCode != http.StatusBadGateway &&
		re.StatusCode != http.StatusServiceUnavailable && re.StatusCode != http.StatusGatewayTimeout && k.s.healthy(ctx) {
		err = &failedWhileUp{err}
	}
	observed := err
	if errors.Is(err, errNotFound) || errors.Is(err, api.ErrSecretNotFound) || errors.Is(err, errConflict) {
		observed = nil
	}
	k.s.observe(op, start, observed)
	return err
}

// kvMeta is what Vault says of the version it read.
type kvMeta struct {
	Version        int            `json:"version"`
	Destroyed      bool           `json:"destroyed"`
	DeletionTime   string         `json:"deletion_time"`
	CustomMetadata customMetadata `json:"custom_metadata"`
}

// read decodes the current version of path into data (a pointer) and
// returns the version's metadata; errNotFound when there is none.
func (k *session) read(ctx context.Context, op, path string, data any) (*kvMeta, error) {
	return k.readVersion(ctx, op, path, 0, data)
}

// readVersion is read of version (0: the current one). The answer is
// decoded once, straight into data: this is the hot path of every read.
func (k *session) readVersion(ctx context.Context, op, path string, version int, data any) (*kvMeta, error) {
	var meta *kvMeta
	err := k.call(ctx, op, func(ctx context.Context) error {
		var params url.Values
		if version > 0 {
			params = url.Values{"version": {strconv.Itoa(version)}}
		}
		var buf bytes.Buffer
		if err := k.get(ctx, k.s.layout.Data(path), params, &buf); err != nil {
			return err
		}
		var err error
		meta, err = decodeAnswer(buf.Bytes(), data)
		if err != nil && !errors.Is(err, errNotFound) {
			return fmt.Errorf("decoding %s: %w", op, err)
		}
		return err
	})
	return meta, err
}

// get is a GET of Vault's API at path with query, made with the store's
// HTTP client rather than the API client: it is every read's one Vault
// call, and building it by hand halves the CPU credgate spends on it. The
// answer's body is read whole into buf (so the connection is reused).
// Like the API client, it follows one redirect (a standby that does not
// forward names the active node), never from https to http.
// Errors: errNotFound for 404, *api.ResponseError for any other status
// but 2xx, or the transport's.
func (k *session) get(ctx context.Context, path string, query url.Values, buf *bytes.Buffer) error {
	u := k.s.vault.addr + "/v1/" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	status, location, err := k.fetch(ctx, u, true, buf)
	if err == nil && isRedirect(status) {
		var next *url.URL
		if next, err = redirectTarget(u, location); err == nil {
			if strings.HasPrefix(u, "https:") && next.Scheme != "https" {
				return fmt.Errorf("vault redirected %s to %s: a protocol downgrade", u, next.Redacted())
			}
			u = next.String()
			status, _, err = k.fetch(ctx, u, false, buf)
		}
	}
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusNotFound:
		return errNotFound
	case status/100 != 2:
		var answer struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(buf.Bytes(), &answer)
		return &api.ResponseError{HTTPMethod: http.MethodGet, URL: u, StatusCode: status, Errors: answer.Errors}
	}
	return nil
}

// redirectTarget is where a redirect of a GET of u to location leads.
func redirectTarget(u, location string) (*url.URL, error) {
	if location == "" {
		return nil, http.ErrNoLocation
	}
	base, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	next, err := url.Parse(location)
	if err != nil {
		return nil, err
	}
	return base.ResolveReference(next), nil
}

// do sends a GET of u as the session's caller.
func (k *session) do(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header = k.s.vault.headers.Clone()
	req.Header.Set("X-Vault-Token", k.token)
	k.trace.set(req.Header)
	return k.s.vault.http.Do(req)
}

func isRedirect(status int) bool {
	return status == http.StatusMovedPermanently || status == http.StatusFound || status == http.StatusTemporaryRedirect
}

// decodeAnswer decodes Vault's answer to a KV v2 read: the version's data
// into data, and its metadata. errNotFound when the version is deleted or
// destroyed. It is every read's largest piece of work of credgate's own,
// so it uses goccy/go-json (a drop-in for encoding/json, already a
// dependency of gin's): 5.9 µs and 17 allocations on a recorded answer
// against encoding/json's 16.5 µs and 77 (BenchmarkDecodeAnswer). The
// custom metadata's hot keys are decoded in the same pass; the metadata
// keeps b for the rest (customMetadata.all), so b must not change after:
// 6.4 → 4.7 µs and 7.1 → 4.1 KB against a nested decode and a copy.
func decodeAnswer(b []byte, data any) (*kvMeta, error) {
	var answer struct {
		Data struct {
			Data     any    `json:"data"`
			Metadata kvMeta `json:"metadata"`
		} `json:"data"`
	}
	answer.Data.Data = data
	if err := gojson.Unmarshal(b, &answer); err != nil {
		return nil, err
	}
	m := answer.Data.Metadata
	if m.Version == 0 || m.Destroyed || m.DeletionTime != "" || answer.Data.Data == nil {
		return nil, errNotFound
	}
	m.CustomMetadata.answer = b
	return &m, nil
}

// pointer is a record that names a service: a credential's index entry, a
// service name's claim.
type pointer struct {
	ServiceID string `json:"service_id"`
}

// kvIO reads and writes KV v2 records: a caller's session (the records of
// its tenant, with its token) or ownKV (credgate's own records, with its
// own token). Records are read and written through it (record, update).
type kvIO interface {
	// read decodes the current version of path into data (a pointer);
	// errNotFound when there is none.
	read(ctx context.Context, op, path string, data any) (*kvMeta, error)
	// write writes data (a record, or its fields as a map) with
	// check-and-set cas (0: no version may exist yet) and returns the new
	// version; errConflict when cas is stale.
	write(ctx context.Context, op, path string, data any, cas int) (int, error)
}

// write writes data to path with check-and-set cas (putCAS).
func (k *session) write(ctx context.Context, op, path string, data any, cas int) (int, error) {
	var version int
	err := k.call(ctx, op, func(cctx context.Context) (err error) {
		version, err = putCAS(cctx, k.client(), k.s.layout, path, data, cas)
		return err
	})
	return version, err
}

// putCAS writes data to path with check-and-set cas (0: the path must have
// no version yet) and returns the new version; errConflict when cas is
// stale. Vault answers a stale cas with 400, as it does content it
// refuses; which one it was is read from the path's current version, not
// from the text. The body is encoded once, with goccy/go-json, from data
// as the caller has it (a record is not turned into a map first), rather
// than by the API client's encoding/json: a tenant's summary head of 100
// credentials took the monitor's pass 2.5 ms of CPU to write.
func putCAS(ctx context.Context, c *api.Client, layout policy.Layout, path string, data any, cas int) (int, error) {
	body, err := gojson.Marshal(map[string]any{"data": data, "options": map[string]any{"cas": cas}})
	if err != nil {
		return 0, err
	}
	sec, err := c.Logical().WriteBytesWithContext(ctx, layout.Data(path), body)
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
		current := 0
		cur, rerr := c.KVv2(layout.Mount).Get(ctx, path)
		switch {
		case rerr == nil:
			current = cur.VersionMetadata.Version
		case !errors.Is(rerr, api.ErrSecretNotFound):
			return 0, rerr
		}
		if current != cas {
			return 0, errConflict
		}
	}
	if err != nil {
		return 0, err
	}
	var version int64
	if sec != nil {
		if n, ok := sec.Data["version"].(json.Number); ok {
			version, err = n.Int64()
		}
	}
	if version <= 0 || err != nil {
		return 0, fmt.Errorf("vault answered the write of %s without its version", path)
	}
	return int(version), nil
}

// readMetadata returns path's KV metadata; errNotFound when the path has no
// version.
func (k *session) readMetadata(ctx context.Context, op, path string) (*api.KVMetadata, error) {
	var m *api.KVMetadata
	err := k.call(ctx, op, func(ctx context.Context) (err error) {
		m, err = k.kv2().GetMetadata(ctx, path)
		if err == nil && (m == nil || m.CurrentVersion == 0) {
			err = errNotFound
		}
		return notFoundAs(err)
	})
	return m, err
}

// patchMetadata merges custom into path's custom_metadata (nil values
// remove keys).
func (k *session) patchMetadata(ctx context.Context, op, path string, custom map[string]any) error {
	return k.call(ctx, op, func(ctx context.Context) error {
		return k.kv2().PatchMetadata(ctx, path, api.KVMetadataPatchInput{CustomMetadata: custom})
	})
}

// putMetadata writes the metadata of a new path, before its first version.
func (k *session) putMetadata(ctx context.Context, op, path string, custom map[string]any) error {
	return k.call(ctx, op, func(ctx context.Context) error {
		return k.kv2().PutMetadata(ctx, path, api.KVMetadataPutInput{CustomMetadata: custom})
	})
}

// destroy removes path with all its versions and metadata. A path that is
// already gone is not an error: removal is the goal.
func (k *session) destroy(ctx context.Context, op, path string) error {
	return k.call(ctx, op, func(ctx context.Context) error {
		err := k.kv2().DeleteMetadata(ctx, path)
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return nil
		}
		return err
	})
}

// list returns the record names directly in folder (a logical path), sorted;
// none when the folder does not exist.
func (k *session) list(ctx context.Context, op, folder string) ([]string, error) {
	return k.listing(ctx, op, folder, false)
}

// listFolders lists the folders (not the records) in folder, without
// their trailing slash.
func (k *session) listFolders(ctx context.Context, op, folder string) ([]string, error) {
	return k.listing(ctx, op, folder, true)
}

func (k *session) listing(ctx context.Context, op, folder string, folders bool) ([]string, error) {
	var keys []string
	err := k.call(ctx, op, func(ctx context.Context) error {
		sec, err := k.client().Logical().ListWithContext(ctx, k.s.layout.Metadata(folder))
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return nil
		}
		if err != nil || sec == nil || sec.Data == nil {
			return err
		}
		raw, _ := sec.Data["keys"].([]any)
		for _, r := range raw {
			if s, ok := r.(string); ok && strings.HasSuffix(s, "/") == folders {
				keys = append(keys, strings.TrimSuffix(s, "/"))
			}
		}
		return nil
	})
	sort.Strings(keys)
	return keys, err
}

// notFoundAs turns Vault's "no secret" into errNotFound.
func notFoundAs(err error) error {
	if errors.Is(err, api.ErrSecretNotFound) {
		return errNotFound
	}
	return err
}

// encode turns a record into KV data.
func encode(v any) (map[string]any, error) {
	b, err := gojson.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, gojson.Unmarshal(b, &m)
}

// decodeData turns KV data into a record: encode's inverse.
func decodeData(m map[string]any, v any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
