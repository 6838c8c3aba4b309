package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// RotatorStore is what the rotator routes need of a store.
type RotatorStore interface {
	CreateRotator(ctx context.Context, r *credgate.Rotator) (*credgate.Rotator, error)
	ListRotators(ctx context.Context) ([]*credgate.Rotator, error)
	GetRotator(ctx context.Context, id string) (*credgate.Rotator, error)
	UpdateRotator(ctx context.Context, id string, ifMatch int, fn func(*credgate.Rotator) error) (*credgate.Rotator, error)
	DeleteRotator(ctx context.Context, id string, ifMatch int) error
	// RotatorExists reports whether the caller's tenant has rotator id
	// (a credential that names it is checked with it).
	RotatorExists(ctx context.Context, id string) (bool, error)
}

// Rotations starts rotations through rotators (rotation.Runner).
type Rotations interface {
	// Start starts a rotation of cred through its rotator, or joins the
	// one under way (started false), and answers the credential's
	// description with the rotation's status. ifMatch > 0 must be the
	// credential's version.
	Start(ctx context.Context, cred, trigger string, ifMatch int) (c *credgate.Credential, started bool, err error)
}

// rotatorInput is what a client may send for a rotator.
type rotatorInput struct {
	URL            *string `json:"url"`
	Description    *string `json:"description"`
	TimeoutSeconds *int    `json:"timeoutSeconds"`
}

func (in *rotatorInput) apply(r *credgate.Rotator) {
	if in.URL != nil {
		r.URL = strings.TrimSpace(*in.URL)
	}
	if in.Description != nil {
		r.Description = *in.Description
	}
	if in.TimeoutSeconds != nil {
		r.TimeoutSeconds = *in.TimeoutSeconds
	}
}

// rotatorView is a rotator without its secret.
func rotatorView(r *credgate.Rotator) *credgate.Rotator {
	v := *r
	v.Secret = ""
	return &v
}

// rotatorID reads :id; a malformed one names nothing.
func rotatorID(c *gin.Context) (string, error) {
	id := c.Param("id")
	if !credgate.ValidRotatorID(id) {
		return "", credgate.Errorf(credgate.ENotFound, "No rotator exists with ID: %s", id)
	}
	return id, nil
}

func (h *handlers) createRotator(c *gin.Context) {
	var in rotatorInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		fail(c, err)
		return
	}
	r := &credgate.Rotator{}
	in.apply(r)
	if err := r.Validate(); err != nil {
		fail(c, err)
		return
	}
	warning, err := h.checkOutbound(c.Request.Context(), "url", r.URL)
	if err != nil {
		fail(c, err)
		return
	}
	warn(c, warning)
	out, err := h.rotators.CreateRotator(c.Request.Context(), r)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/rotators/"+out.ID)
	c.Header("ETag", etag(out.Version))
	c.Header("Cache-Control", "no-store") // the answer holds the signing secret
	respond(c, http.StatusCreated, "Rotator registered successfully; its secret is shown this once", out)
}

func (h *handlers) listRotators(c *gin.Context) {
	list, err := h.rotators.ListRotators(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]*credgate.Rotator, len(list))
	for i, r := range list {
		out[i] = rotatorView(r)
	}
	respond(c, http.StatusOK, fmt.Sprintf("%d rotators", len(out)), out)
}

func (h *handlers) getRotator(c *gin.Context) {
	id, err := rotatorID(c)
	if err != nil {
		fail(c, err)
		return
	}
	r, err := h.rotators.GetRotator(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("ETag", etag(r.Version))
	respond(c, http.StatusOK, "Rotator retrieved successfully", rotatorView(r))
}

func (h *handlers) patchRotator(c *gin.Context) {
	id, err := rotatorID(c)
	if err != nil {
		fail(c, err)
		return
	}
	version, err := ifMatch(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in rotatorInput
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
	out, err := h.rotators.UpdateRotator(c.Request.Context(), id, version, func(r *credgate.Rotator) error {
		in.apply(r)
		return nil
	})
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("ETag", etag(out.Version))
	respond(c, http.StatusOK, "Rotator updated successfully", rotatorView(out))
}

func (h *handlers) deleteRotator(c *gin.Context) {
	id, err := rotatorID(c)
	if err != nil {
		fail(c, err)
		return
	}
	version, err := ifMatch(c)
	if err != nil {
		fail(c, err)
		return
	}
	if err := h.rotators.DeleteRotator(c.Request.Context(), id, version); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// checkRotator refuses a credential write that names a rotator the tenant
// does not have.
func (h *handlers) checkRotator(ctx context.Context, in *credentialInput) error {
	raw, ok := in.fields["rotator"]
	if !ok {
		return nil
	}
	var id string
	if json.Unmarshal(raw, &id) != nil || id == "" || !credgate.ValidRotatorID(id) {
		return nil // the credential's rule names what is wrong
	}
	if h.rotators == nil {
		return credgate.FieldErrors{"rotator": "rotators are not served here"}.Err()
	}
	exists, err := h.rotators.RotatorExists(ctx, id)
	if err != nil {
		return err
	}
	if !exists {
		return credgate.FieldErrors{"rotator": "no rotator " + id + " exists in this tenant"}.Err()
	}
	return nil
}

// rotateViaRotator starts a rotation of credential id through its rotator
// (POST …/rotate {"via":"rotator"}): 202, with the rotation's status; the
// steps run in the background and every replica may resume them.
func (h *handlers) rotateViaRotator(c *gin.Context, id string, version int) {
	if h.rotations == nil {
		fail(c, credgate.FieldErrors{"via": "rotation through rotators is not served here"}.Err())
		return
	}
	ctx := c.Request.Context()
	out, started, err := h.rotations.Start(ctx, id, credgate.TriggerRequest, version)
	if err != nil {
		fail(c, err)
		return
	}
	msg := "Rotation started through rotator " + out.Rotator + "; follow it in the credential's rotation"
	if !started {
		msg = "A rotation of this credential is under way; this request joined it"
	}
	c.Header("ETag", etag(out.Version))
	respond(c, http.StatusAccepted, msg, viewOf(ctx, out, omitSecrets))
}
