package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// rotateCredential gives a credential new secret values as a new version:
// the values in the body, values Vault generates ({"generate":true}), or,
// with an empty body, a refresh-token grant for an OAuth2 credential.
// If-Match, when sent, must name the current version.
func (h *handlers) rotateCredential(c *gin.Context) {
	id, version, err := credentialWrite(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in credentialInput // an empty body asks for an OAuth2 refresh
	if err := decodeJSON(c.Request.Body, &in); err != nil && !errors.Is(err, errEmptyBody) {
		fail(c, err)
		return
	}
	if err := in.sameID(id); err != nil {
		fail(c, err)
		return
	}
	if in.descriptive() {
		fail(c, credgate.FieldErrors{credgate.WholeBody: "rotate takes only secret values or generate; change other fields with PATCH"}.Err())
		return
	}
	if in.Via != nil {
		switch {
		case *in.Via != "rotator":
			fail(c, credgate.FieldErrors{"via": `must be "rotator"`}.Err())
		case in.hasSecrets() || in.Generate != nil || in.PreviousRevokeAt != nil || in.RevokeWhenMigrated != nil:
			fail(c, credgate.FieldErrors{"via": "takes nothing else: the rotator makes the values, and the rotation policy's keepPrevious keeps the previous ones"}.Err())
		default:
			h.rotateViaRotator(c, id, version)
		}
		return
	}
	generate := in.Generate != nil && *in.Generate
	// previousRevokeAt keeps the values being replaced servable until
	// then, for a gradual migration; without it they end now.
	// revokeWhenMigrated ends them earlier, once every recent reader of
	// them has read the new ones (credgate.Migration).
	var keep *time.Time
	whenMigrated := in.RevokeWhenMigrated != nil && *in.RevokeWhenMigrated
	if in.PreviousRevokeAt != nil || whenMigrated {
		fe := credgate.FieldErrors{}
		if in.PreviousRevokeAt != nil {
			if keep = timeOrNull(fe, "previousRevokeAt", in.PreviousRevokeAt); keep != nil && !keep.After(time.Now()) {
				fe.Add("previousRevokeAt", "must be in the future")
			}
		}
		if whenMigrated && keep == nil {
			fe.Add("revokeWhenMigrated", "needs previousRevokeAt, the deadline of the migration")
		}
		if err := fe.Err(); err != nil {
			fail(c, err)
			return
		}
	}
	ctx, ann, err := h.intend(c.Request.Context(), &credgate.Credential{ID: id}, credgate.EventRotated)
	if err != nil {
		fail(c, err)
		return
	}
	var out *credgate.Credential
	seen := 0 // the version new values were set on
	switch {
	case generate && in.hasSecrets():
		err = credgate.FieldErrors{"generate": "send new values or generate, not both"}.Err()
	case generate:
		out, err = h.rotator.RotateCredential(ctx, id, version, func(cr *credgate.Credential) error {
			seen = cr.Version
			cr.KeepPrevious(keep, whenMigrated)
			return cr.Generate(func() (string, error) { return h.rotator.RandomSecret(ctx) })
		}, false)
	case in.hasSecrets():
		// Named values: a repeat (its answer lost) whose values are in
		// the credential already is answered with it, even with the
		// If-Match read before.
		out, err = h.rotator.RotateCredential(ctx, id, version, func(cr *credgate.Credential) error {
			seen = cr.Version
			old := cr.Secrets.Clone()
			if err := in.apply(cr); err != nil {
				return err
			}
			if credgate.ChangeOf(old, cr.Secrets) == credgate.ChangeRotated {
				cr.KeepPrevious(keep, whenMigrated)
			}
			return nil
		}, true)
	case keep != nil:
		err = credgate.FieldErrors{"previousRevokeAt": "goes with new values or generate; a refresh leaves nothing to migrate from"}.Err()
	default:
		out, err = h.rotator.RefreshCredential(ctx, id, version, h.refresh)
	}
	if err == nil && out.Version != seen { // not when the values were in the credential already
		ann.happened(ctx, credgate.EventRotated, out)
	}
	ann.done(ctx, err)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("ETag", etag(out.Version))
	respond(c, http.StatusOK, "Credential rotated successfully", viewOf(ctx, out, maskSecrets))
}
