package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// WebhookStore is what the webhook routes need of a store.
type WebhookStore interface {
	CreateWebhook(ctx context.Context, w *credgate.Webhook) (*credgate.Webhook, error)
	ListWebhooks(ctx context.Context) ([]*credgate.Webhook, error)
	GetWebhook(ctx context.Context, id string) (*credgate.Webhook, error)
	UpdateWebhook(ctx context.Context, id string, ifMatch int, fn func(*credgate.Webhook) error) (*credgate.Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
	WebhookDeliveries(ctx context.Context, id string) ([]credgate.Delivery, error)
}

// webhookInput is what a client may send for a subscription.
type webhookInput struct {
	URL         *string   `json:"url"`
	EventTypes  *[]string `json:"eventTypes"`
	Enabled     *bool     `json:"enabled"`
	Description *string   `json:"description"`
}

func (in *webhookInput) apply(w *credgate.Webhook) {
	if in.URL != nil {
		w.URL = strings.TrimSpace(*in.URL)
	}
	if in.EventTypes != nil {
		w.EventTypes = *in.EventTypes
	}
	if in.Enabled != nil {
		w.SetEnabled(*in.Enabled)
	}
	if in.Description != nil {
		w.Description = *in.Description
	}
}

// webhookView is a subscription without its secret.
func webhookView(w *credgate.Webhook) *credgate.Webhook {
	v := *w
	v.Secret = ""
	return &v
}

// webhookID reads :id; a malformed one names nothing.
func webhookID(c *gin.Context) (string, error) {
	id := c.Param("id")
	if !credgate.ValidWebhookID(id) {
		return "", credgate.Errorf(credgate.ENotFound, "No webhook exists with ID: %s", id)
	}
	return id, nil
}

func (h *handlers) createWebhook(c *gin.Context) {
	var in webhookInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		fail(c, err)
		return
	}
	w := &credgate.Webhook{Enabled: true}
	in.apply(w)
	if err := w.Validate(); err != nil {
		fail(c, err)
		return
	}
	warning, err := h.checkOutbound(c.Request.Context(), "url", w.URL)
	if err != nil {
		fail(c, err)
		return
	}
	warn(c, warning)
	out, err := h.webhooks.CreateWebhook(c.Request.Context(), w)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/webhooks/"+out.ID)
	c.Header("ETag", etag(out.Version))
	c.Header("Cache-Control", "no-store") // the answer holds the signing secret
	respond(c, http.StatusCreated, "Webhook created successfully; its secret is shown this once", out)
}

func (h *handlers) listWebhooks(c *gin.Context) {
	list, err := h.webhooks.ListWebhooks(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]*credgate.Webhook, len(list))
	for i, w := range list {
		out[i] = webhookView(w)
	}
	respond(c, http.StatusOK, fmt.Sprintf("%d webhooks", len(out)), out)
}

func (h *handlers) getWebhook(c *gin.Context) {
	id, err := webhookID(c)
	if err != nil {
		fail(c, err)
		return
	}
	w, err := h.webhooks.GetWebhook(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("ETag", etag(w.Version))
	respond(c, http.StatusOK, "Webhook retrieved successfully", webhookView(w))
}

func (h *handlers) patchWebhook(c *gin.Context) {
	id, err := webhookID(c)
	if err != nil {
		fail(c, err)
		return
	}
	version, err := ifMatch(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in webhookInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		fail(c, err)
		return
	}
	if in.URL != nil {
		w, err := h.checkOutbound(c.Request.Context(), "url", strings.TrimSpace(*in.URL))
		if err != nil {
			fail(c, err)
			return
		}
		warn(c, w)
	}
	out, err := h.webhooks.UpdateWebhook(c.Request.Context(), id, version, func(w *credgate.Webhook) error {
		in.apply(w)
		return nil
	})
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("ETag", etag(out.Version))
	respond(c, http.StatusOK, "Webhook updated successfully", webhookView(out))
}

func (h *handlers) deleteWebhook(c *gin.Context) {
	id, err := webhookID(c)
	if err != nil {
		fail(c, err)
		return
	}
	if err := h.webhooks.DeleteWebhook(c.Request.Context(), id); err != nil {
		fail(c, err)
		return
	}
	respond(c, http.StatusOK, "Webhook deleted successfully", gin.H{"id": id})
}

func (h *handlers) webhookDeliveries(c *gin.Context) {
	id, err := webhookID(c)
	if err != nil {
		fail(c, err)
		return
	}
	list, err := h.webhooks.WebhookDeliveries(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	respond(c, http.StatusOK, fmt.Sprintf("%d deliveries", len(list)), list)
}
