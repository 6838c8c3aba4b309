package httpapi

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// Connector runs OAuth2 connects (connect.Connector).
type Connector interface {
	Start(ctx context.Context, cred, redirectAfter string) (*credgate.ConnectStart, error)
	Callback(ctx context.Context, query url.Values) credgate.ConnectResult
}

// TokenMinter gives a client-credentials credential a current access
// token when a read finds it due (vaultstore.Store.EnsureToken).
type TokenMinter interface {
	EnsureToken(ctx context.Context, cred string, grant credgate.RefreshGrant) (*credgate.Credential, error)
}

// connectCredential starts a connect: 200 with the authorization URL.
func (h *handlers) connectCredential(c *gin.Context) {
	id, err := credentialID(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in struct {
		RedirectAfter string `json:"redirectAfter"`
	}
	if err := decodeJSON(c.Request.Body, &in); err != nil && !errors.Is(err, errEmptyBody) {
		fail(c, err)
		return
	}
	out, err := h.connect.Start(c.Request.Context(), id, in.RedirectAfter)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store") // the URL carries a single-use state
	respond(c, http.StatusOK, "Open authorizationUrl to connect the credential; it is valid once, until expiresAt", out)
}

// callbackPage is the page a browser lands on after the provider's
// consent screen. Everything in it is escaped; it never shows a token.
var callbackPage = template.Must(template.New("callback").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>credgate: {{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1 id="result">{{.Title}}</h1>
<p id="detail">{{.Detail}}</p>
</body></html>
`))

// oauthCallback is the providers' redirect (public: the browser carries no
// credgate token; the state is the proof).
func (h *handlers) oauthCallback(c *gin.Context) {
	res := h.connect.Callback(c.Request.Context(), c.Request.URL.Query())
	c.Header("Cache-Control", "no-store")
	c.Header("Referrer-Policy", "no-referrer") // the URL held a code
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	if res.RedirectAfter != "" {
		u, err := url.Parse(res.RedirectAfter)
		if err == nil {
			q := u.Query()
			if res.Err != nil {
				q.Set("error", credgate.ErrorCode(res.Err))
			} else {
				q.Set("connected", res.Credential.ID)
			}
			u.RawQuery = q.Encode()
			c.Redirect(http.StatusFound, u.String())
			return
		}
	}
	page := struct{ Title, Detail string }{}
	status := http.StatusOK
	if res.Err != nil {
		status = errorKinds[credgate.ErrorCode(res.Err)].status
		if status == 0 || status == http.StatusInternalServerError {
			status = http.StatusBadGateway
		}
		page.Title, page.Detail = "Not connected", credgate.ErrorMessage(res.Err)
		if credgate.ErrorCode(res.Err) == credgate.EInternal {
			page.Detail = "internal error; nothing was stored"
		}
	} else {
		page.Title = "Connected"
		page.Detail = "The credential " + res.Credential.CredentialName + " (" + res.Credential.ID + ") of " + res.Credential.IntegrationID + " is connected. You may close this window."
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	_ = callbackPage.Execute(c.Writer, page)
}
