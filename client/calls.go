package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/credgate/credgate"
)

// Service is a registered external service (the services family).
type Service = credgate.Service

// ServiceCredentials is a service's credentials as the services family
// answers them: a string map of values (api_key, api_secret, ...).
type ServiceCredentials struct {
	ServiceID    string            `json:"service_id"`
	CredentialID string            `json:"credential_id"`
	Credentials  map[string]string `json:"credentials"`
	Metadata     struct {
		LastRotated time.Time  `json:"last_rotated"`
		ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	} `json:"metadata"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int       `json:"version"`
}

// Credential is a credential as the credentials family answers it: its
// descriptive fields, the status its reader sees, and its values when the
// call answers them (Values by secret field name: apiKey, clientSecret,
// ...; CustomFields for custom ones).
type Credential struct {
	credgate.Credential
	Status       string            `json:"status"`
	Values       map[string]string `json:"-"`
	CustomFields map[string]string `json:"customFields,omitempty"`
	Tenant       struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"tenant"`
}

// UnmarshalJSON reads the descriptive fields and, by credgate's one list
// of them, the secret fields.
func (c *Credential) UnmarshalJSON(b []byte) error {
	type plain Credential
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for _, f := range credgate.SecretFields() {
		var v string
		if raw, ok := all[f.Name]; ok && json.Unmarshal(raw, &v) == nil {
			if c.Values == nil {
				c.Values = map[string]string{}
			}
			c.Values[f.Name] = v
		}
	}
	return nil
}

// ListServices lists the caller's tenant's services.
func (c *Client) ListServices(ctx context.Context) ([]Service, error) {
	var out struct {
		Services []Service `json:"services"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/services"}, &out)
	return out.Services, err
}

// GetService reads service id.
func (c *Client) GetService(ctx context.Context, id string) (*Service, error) {
	var out Service
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/services/" + url.PathEscape(id)}, &out)
	return &out, err
}

// CreateService registers svc (id optional). idempotencyKey, when set,
// makes a retry of the same call answer the first answer.
func (c *Client) CreateService(ctx context.Context, svc *Service, idempotencyKey string) (*Service, error) {
	body := map[string]any{}
	for k, v := range map[string]string{"id": svc.ID, "name": svc.Name, "description": svc.Description, "type": svc.Type,
		"status": svc.Status, "base_url": svc.BaseURL, "api_version": svc.APIVersion} {
		if v != "" { // what is left out takes the server's default
			body[k] = v
		}
	}
	if svc.Metadata != nil {
		body["metadata"] = svc.Metadata
	}
	var out Service
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/services", body: body, idempotency: idempotencyKey}, &out)
	return &out, err
}

// DeleteService removes service id and its credentials; ifMatch > 0 must
// be its version.
func (c *Client) DeleteService(ctx context.Context, id string, ifMatch int) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/api/v1/services/" + url.PathEscape(id), ifMatch: ifMatch}, nil)
	return err
}

// GetServiceCredentials reads a service's credentials (seed 000's shape).
func (c *Client) GetServiceCredentials(ctx context.Context, service string) (*ServiceCredentials, error) {
	var out ServiceCredentials
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/services/" + url.PathEscape(service) + "/credentials"}, &out)
	return &out, err
}

// PutServiceCredentials sets a service's credentials, a new version;
// ifMatch > 0 must be their version.
func (c *Client) PutServiceCredentials(ctx context.Context, service string, values map[string]string, expiresAt *time.Time, ifMatch int) (*ServiceCredentials, error) {
	body := map[string]any{"credentials": values}
	if expiresAt != nil {
		body["metadata"] = map[string]any{"expires_at": expiresAt.UTC().Format(time.RFC3339)}
	}
	var out ServiceCredentials
	_, err := c.do(ctx, request{method: http.MethodPut, path: "/api/v1/services/" + url.PathEscape(service) + "/credentials", body: body, ifMatch: ifMatch}, &out)
	return &out, err
}

// CredentialRead picks what GetCredential reads: the integration's
// credential it serves, or the one CredentialID names, at Version (0: the
// current one).
type CredentialRead struct {
	Integration  string
	CredentialID string
	Version      int
}

// GetCredential reads a credential with its values (credentials:read).
func (c *Client) GetCredential(ctx context.Context, r CredentialRead) (*Credential, *Response, error) {
	q := url.Values{}
	if r.CredentialID != "" {
		q.Set("credentialId", r.CredentialID)
	}
	if r.Version > 0 {
		q.Set("version", strconv.Itoa(r.Version))
	}
	var out Credential
	res, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/credentials/" + url.PathEscape(r.Integration), query: q}, &out)
	return &out, res, err
}

// CreateCredential stores a credential: fields are the credentials
// family's (integrationId, credentialName, authType, apiKey, ...).
func (c *Client) CreateCredential(ctx context.Context, fields map[string]any, idempotencyKey string) (*Credential, error) {
	var out Credential
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/credentials", body: fields, idempotency: idempotencyKey}, &out)
	return &out, err
}

// UpdateCredential changes what fields name (PATCH); ifMatch > 0 must be
// its version.
func (c *Client) UpdateCredential(ctx context.Context, id string, fields map[string]any, ifMatch int) (*Credential, error) {
	var out Credential
	_, err := c.do(ctx, request{method: http.MethodPatch, path: "/api/v1/credentials/" + url.PathEscape(id), body: fields, ifMatch: ifMatch}, &out)
	return &out, err
}

// RotateCredential rotates credential id: new values in body, or
// {"generate": true}, or nil for an OAuth2 refresh, or {"via": "rotator"}.
func (c *Client) RotateCredential(ctx context.Context, id string, body map[string]any, ifMatch int) (*Credential, *Response, error) {
	var out Credential
	var b any
	if body != nil {
		b = body
	}
	res, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/credentials/" + url.PathEscape(id) + "/rotate", body: b, ifMatch: ifMatch}, &out)
	return &out, res, err
}

// DeleteCredential removes credential id; ifMatch > 0 must be its version.
func (c *Client) DeleteCredential(ctx context.Context, id string, ifMatch int) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/api/v1/credentials/" + url.PathEscape(id), ifMatch: ifMatch}, nil)
	return err
}

// CredentialVersions is a credential's history, never a value.
func (c *Client) CredentialVersions(ctx context.Context, id string) ([]credgate.CredentialVersion, error) {
	var out struct {
		Versions []credgate.CredentialVersion `json:"versions"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/credentials/" + url.PathEscape(id) + "/versions"}, &out)
	return out.Versions, err
}

// Inventory filters the inventory (GET /api/v1/credentials): the query
// parameters by name (integrationId, status, expiringWithin, ...).
type Inventory url.Values

// pageOf is one page of the inventory and where the next one starts.
type pageOf struct {
	items []Credential
	next  string
}

func (p *pageOf) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &p.items) }

func pageCursor(raw []byte) string {
	var env struct {
		NextCursor string `json:"nextCursor"`
	}
	_ = json.Unmarshal(raw, &env)
	return env.NextCursor
}

// Credentials walks the inventory a page at a time: every credential the
// filter selects, without values. The walk stops at the first error,
// which it yields.
func (c *Client) Credentials(ctx context.Context, filter Inventory) iter.Seq2[*Credential, error] {
	return func(yield func(*Credential, error) bool) {
		q := url.Values{}
		for k, v := range filter {
			q[k] = v
		}
		for {
			var page pageOf
			if _, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/credentials", query: q}, &page); err != nil {
				yield(nil, err)
				return
			}
			for i := range page.items {
				if !yield(&page.items[i], nil) {
					return
				}
			}
			if page.next == "" {
				return
			}
			q.Set("cursor", page.next)
		}
	}
}
