package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/credgate/credgate"
)

// The routes of integration_admin: services' whole records, webhooks,
// grants, rotators, the review of who may read a credential, who did.

// UpdateService replaces service id's mutable fields (PUT); ifMatch > 0
// must be its version.
func (c *Client) UpdateService(ctx context.Context, id string, svc *Service, ifMatch int) (*Service, error) {
	var out Service
	_, err := c.do(ctx, request{method: http.MethodPut, path: "/api/v1/services/" + url.PathEscape(id), body: svc, ifMatch: ifMatch}, &out)
	return &out, err
}

// PatchService applies a JSON merge patch (RFC 7386: null clears a field)
// to service id.
func (c *Client) PatchService(ctx context.Context, id string, patch map[string]any, ifMatch int) (*Service, error) {
	var out Service
	_, err := c.do(ctx, request{method: http.MethodPatch, path: "/api/v1/services/" + url.PathEscape(id), body: patch, ifMatch: ifMatch}, &out)
	return &out, err
}

// ServiceCredentialVersions is the history of a service's credentials.
func (c *Client) ServiceCredentialVersions(ctx context.Context, service string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/services/" + url.PathEscape(service) + "/credentials/versions"}, &out)
	return out, err
}

// CreateWebhook subscribes a URL to event types; the answer carries the
// signing secret, the only time it is shown.
func (c *Client) CreateWebhook(ctx context.Context, w *credgate.Webhook) (*credgate.Webhook, error) {
	var out credgate.Webhook
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/webhooks", body: map[string]any{"url": w.URL, "eventTypes": w.EventTypes, "description": w.Description}}, &out)
	return &out, err
}

// ListWebhooks lists the tenant's subscriptions, without secrets.
func (c *Client) ListWebhooks(ctx context.Context) ([]credgate.Webhook, error) {
	var out []credgate.Webhook
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/webhooks"}, &out)
	return out, err
}

// GetWebhook reads subscription id, without its secret.
func (c *Client) GetWebhook(ctx context.Context, id string) (*credgate.Webhook, error) {
	var out credgate.Webhook
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/webhooks/" + url.PathEscape(id)}, &out)
	return &out, err
}

// UpdateWebhook changes what fields name (url, eventTypes, enabled,
// description).
func (c *Client) UpdateWebhook(ctx context.Context, id string, fields map[string]any, ifMatch int) (*credgate.Webhook, error) {
	var out credgate.Webhook
	_, err := c.do(ctx, request{method: http.MethodPatch, path: "/api/v1/webhooks/" + url.PathEscape(id), body: fields, ifMatch: ifMatch}, &out)
	return &out, err
}

// DeleteWebhook removes subscription id.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/api/v1/webhooks/" + url.PathEscape(id)}, nil)
	return err
}

// WebhookDeliveries is subscription id's delivery log, newest first.
func (c *Client) WebhookDeliveries(ctx context.Context, id string) ([]credgate.Delivery, error) {
	var out []credgate.Delivery
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/webhooks/" + url.PathEscape(id) + "/deliveries"}, &out)
	return out, err
}

// CreateGrant gives a subject or group a role on named integrations.
func (c *Client) CreateGrant(ctx context.Context, g *credgate.Grant) (*credgate.Grant, error) {
	body := map[string]any{"role": g.Role, "integrations": g.Integrations}
	for k, v := range map[string]string{"subject": g.Subject, "group": g.Group, "description": g.Description} {
		if v != "" {
			body[k] = v
		}
	}
	if g.ExpiresAt != nil {
		body["expiresAt"] = g.ExpiresAt
	}
	var out credgate.Grant
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/grants", body: body}, &out)
	return &out, err
}

// ListGrants lists the tenant's grants, from the API and configuration.
func (c *Client) ListGrants(ctx context.Context) ([]credgate.Grant, error) {
	var out []credgate.Grant
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/grants"}, &out)
	return out, err
}

// GetGrant reads grant id.
func (c *Client) GetGrant(ctx context.Context, id string) (*credgate.Grant, error) {
	var out credgate.Grant
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/grants/" + url.PathEscape(id)}, &out)
	return &out, err
}

// DeleteGrant removes grant id.
func (c *Client) DeleteGrant(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/api/v1/grants/" + url.PathEscape(id)}, nil)
	return err
}

// CreateRotator registers a rotator; the answer carries its signing
// secret, the only time it is shown.
func (c *Client) CreateRotator(ctx context.Context, r *credgate.Rotator) (*credgate.Rotator, error) {
	body := map[string]any{"url": r.URL}
	if r.Description != "" {
		body["description"] = r.Description
	}
	if r.TimeoutSeconds > 0 {
		body["timeoutSeconds"] = r.TimeoutSeconds
	}
	var out credgate.Rotator
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/rotators", body: body}, &out)
	return &out, err
}

// ListRotators lists the tenant's rotators, without secrets.
func (c *Client) ListRotators(ctx context.Context) ([]credgate.Rotator, error) {
	var out []credgate.Rotator
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/rotators"}, &out)
	return out, err
}

// GetRotator reads rotator id, without its secret.
func (c *Client) GetRotator(ctx context.Context, id string) (*credgate.Rotator, error) {
	var out credgate.Rotator
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/rotators/" + url.PathEscape(id)}, &out)
	return &out, err
}

// UpdateRotator changes what fields name (url, description,
// timeoutSeconds).
func (c *Client) UpdateRotator(ctx context.Context, id string, fields map[string]any, ifMatch int) (*credgate.Rotator, error) {
	var out credgate.Rotator
	_, err := c.do(ctx, request{method: http.MethodPatch, path: "/api/v1/rotators/" + url.PathEscape(id), body: fields, ifMatch: ifMatch}, &out)
	return &out, err
}

// DeleteRotator removes rotator id.
func (c *Client) DeleteRotator(ctx context.Context, id string, ifMatch int) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/api/v1/rotators/" + url.PathEscape(id), ifMatch: ifMatch}, nil)
	return err
}

// ConnectCredential starts an OAuth2 connect of credential id: the URL a
// person opens (redirectAfter, when set, is where their browser goes
// afterwards).
func (c *Client) ConnectCredential(ctx context.Context, id, redirectAfter string) (*credgate.ConnectStart, error) {
	body := map[string]any{}
	if redirectAfter != "" {
		body["redirectAfter"] = redirectAfter
	}
	var out credgate.ConnectStart
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/credentials/" + url.PathEscape(id) + "/connect", body: body}, &out)
	return &out, err
}

// CredentialUsage is who read credential id and which version (since: a
// span such as 7d, or an RFC 3339 time; "" for all kept).
func (c *Client) CredentialUsage(ctx context.Context, id, since string) (json.RawMessage, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/credentials/" + url.PathEscape(id) + "/usage", query: q}, &out)
	return out, err
}

// CredentialAccess is who may read credential id, and through what.
func (c *Client) CredentialAccess(ctx context.Context, id string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/credentials/" + url.PathEscape(id) + "/access"}, &out)
	return out, err
}

// ServiceAccess is who may read service id's credentials, and through
// what.
func (c *Client) ServiceAccess(ctx context.Context, id string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/services/" + url.PathEscape(id) + "/access"}, &out)
	return out, err
}
