package audit

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/credgate/credgate/policy"
)

// entry is what the scan reads of one line of Vault's file audit log.
type entry struct {
	Time  time.Time `json:"time"`
	Type  string    `json:"type"` // request or response
	Error string    `json:"error"`
	Auth  struct {
		ClientToken   string            `json:"client_token"`
		TokenType     string            `json:"token_type"`
		TokenPolicies []string          `json:"token_policies"`
		Metadata      map[string]string `json:"metadata"`
	} `json:"auth"`
	Request struct {
		ID            string              `json:"id"`
		Operation     string              `json:"operation"`
		Path          string              `json:"path"`
		RemoteAddress string              `json:"remote_address"`
		Headers       map[string][]string `json:"headers"`
		Data          struct {
			Options struct {
				CAS json.RawMessage `json:"cas"` // present (its value hashed) on a check-and-set write
			} `json:"options"`
		} `json:"data"`
	} `json:"request"`
	Response struct {
		Auth struct {
			TokenType     string            `json:"token_type"`
			TokenPolicies []string          `json:"token_policies"`
			Metadata      map[string]string `json:"metadata"`
		} `json:"auth"`
		Data struct {
			Version  *int `json:"version"`
			Metadata struct {
				Version *int `json:"version"`
			} `json:"metadata"`
		} `json:"data"`
	} `json:"response"`
}

// lostRace reports whether the entry is a check-and-set write that
// another writer's came before: Vault answers it "invalid request" (the
// reason, in the response's data, is hashed), and credgate reads the
// record again and retries, so it is not the request's failure.
func (e *entry) lostRace() bool {
	return len(e.Request.Data.Options.CAS) > 0 && strings.Contains(e.Error, "invalid request")
}

// requestID is the X-Request-Id the entry carries, or "": the caller's
// id, shown, never trusted.
func (e *entry) requestID() string { return e.header("x-request-id") }

// correlation is credgate's own id of the request the call was made for
// (credgate.CorrelationHeader), or "".
func (e *entry) correlation() string { return e.header("x-credgate-request") }

func (e *entry) header(name string) string {
	for k, v := range e.Request.Headers {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// callerToken reports whether the call was made with a caller token
// credgate minted: a batch token whose metadata names a subject and a
// tenant and whose every policy is one credgate writes for that tenant.
// Nothing else (no token, a token of Vault's other clients, credgate's
// own) is ever an operation of a credgate user.
func (e *entry) callerToken() bool {
	return minted(e.Auth.TokenType, e.Auth.TokenPolicies, e.Auth.Metadata)
}

// mints reports whether the call minted a caller token (credgate's own
// token creating one through its token role).
func (e *entry) mints() bool {
	return strings.HasPrefix(e.Request.Path, "auth/token/create/") && e.Error == "" &&
		minted(e.Response.Auth.TokenType, e.Response.Auth.TokenPolicies, e.Response.Auth.Metadata)
}

func minted(typ string, policies []string, md map[string]string) bool {
	if typ != "batch" || md["sub"] == "" || md["tenant"] == "" || len(policies) == 0 {
		return false
	}
	for _, p := range policies {
		if !policy.OfTenant(md["tenant"], p) {
			return false
		}
	}
	return true
}

// authenticated reports whether the call carried a token Vault knew.
func (e *entry) authenticated() bool {
	return e.Auth.ClientToken != "" && len(e.Auth.TokenPolicies) > 0
}

// version is the KV version the response names: a write's, or a read's.
func (e *entry) version() int {
	switch {
	case e.Response.Data.Version != nil:
		return *e.Response.Data.Version
	case e.Response.Data.Metadata.Version != nil:
		return *e.Response.Data.Metadata.Version
	}
	return 0
}

// target is what a path of credgate's KV mount names.
type target struct {
	api    string // data or metadata
	tenant string
	folder string // services, credentials, credential-index, ...
	// integration and credential ids, as far as the path names them
	integration, credential string
	list                    bool // the path is a folder (a list)
}

// parsePath reads <mount>/<api>/tenants/<tenant>/<folder>/<rest>; ok is false
// for any other path.
func parsePath(mount, path string) (target, bool) {
	rest, ok := strings.CutPrefix(path, mount+"/")
	if !ok {
		return target{}, false
	}
	var t target
	t.api, rest, ok = strings.Cut(rest, "/")
	if !ok || (t.api != "data" && t.api != "metadata") {
		return target{}, false
	}
	rest, ok = strings.CutPrefix(rest, "tenants/")
	if !ok {
		return target{}, false
	}
	t.list = strings.HasSuffix(rest, "/")
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	t.tenant = parts[0]
	if t.tenant == "" {
		return target{}, false
	}
	if len(parts) > 1 {
		t.folder = parts[1]
	}
	switch t.folder {
	case "services":
		if len(parts) > 2 {
			t.integration = parts[2]
		}
	case "credentials":
		if len(parts) > 2 {
			t.integration = parts[2]
		}
		if len(parts) > 3 {
			t.credential = parts[3]
		}
	case "credential-index", "credential-locks":
		if len(parts) > 2 {
			t.credential = parts[2]
		}
	}
	return t, true
}
