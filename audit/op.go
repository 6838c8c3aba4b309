package audit

import (
	"strings"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// Operations, in credgate's words.
const (
	OpReadValues   = "read values"
	OpReadMetadata = "read metadata"
	OpList         = "list"
	OpCreate       = "create"
	OpUpdate       = "update"
	OpRotate       = "rotate"
	OpDelete       = "delete"
	OpMint         = "mint caller token"
	OpBookkeeping  = "bookkeeping" // events, webhooks, the monitor's lease
	OpOther        = "other"       // a Vault call credgate did not make
)

// Outcomes.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeError  = "error"
)

// Op is one credgate operation as Vault's audit log records it.
type Op struct {
	Time        time.Time `json:"time"`
	Tenant      string    `json:"tenant,omitempty"`
	Subject     string    `json:"subject,omitempty"`
	Email       string    `json:"email,omitempty"`
	Operation   string    `json:"operation"`
	Integration string    `json:"integrationId,omitempty"`
	Credential  string    `json:"credentialId,omitempty"`
	Version     int       `json:"version,omitempty"`
	Outcome     string    `json:"outcome"`
	RequestID   string    `json:"requestId,omitempty"`
	Client      string    `json:"client,omitempty"`
	// Path is the Vault path of a call credgate did not make (--all).
	Path string `json:"path,omitempty"`
	// Grant names the grant the caller's access came from, when its
	// tenant-wide roles do not reach the integration.
	Grant string `json:"grant,omitempty"`
}

// byCredgate reports whether credgate made the operation.
func (o *Op) byCredgate() bool { return o.Operation != OpOther }

// call is one Vault call of a group.
type call struct {
	op      string // Vault's operation: read, list, create, update, patch, delete
	t       target
	version int
	denied  bool
	failed  bool
}

// group is the Vault calls of one credgate request by one token.
type group struct {
	first, last           time.Time
	tenant, sub, email    string
	roles, grants         string // the caller token's metadata: its roles and grants
	requestID, client     string
	calls                 []call
	mint                  bool
	otherPath             string // a call outside credgate's mount
	hit                   bool   // a call carried the --value hash
	seenDenied, seenError bool
}

// maxCalls bounds what a group keeps: a request makes a few dozen calls at
// most (an inventory page makes one per credential; the first ones name it).
const maxCalls = 64

func (g *group) add(c call) {
	if c.denied {
		g.seenDenied = true
	}
	if c.failed {
		g.seenError = true
	}
	if len(g.calls) < maxCalls {
		g.calls = append(g.calls, c)
	}
}

// has reports whether the group made a call of one of ops on folder (via
// api, "" for either), on a record (not a list).
func (g *group) has(folder, api string, ops ...string) bool {
	for _, c := range g.calls {
		if c.t.folder == folder && (api == "" || c.t.api == api) && !c.t.list {
			for _, o := range ops {
				if c.op == o {
					return true
				}
			}
		}
	}
	return false
}

// hasList reports whether the group listed services or credentials.
func (g *group) hasList() bool {
	for _, c := range g.calls {
		if c.op == "list" && (c.t.folder == "services" || c.t.folder == "credentials") {
			return true
		}
	}
	return false
}

// op names what the group did.
func (g *group) op() Op {
	o := Op{Time: g.first, Tenant: g.tenant, Subject: g.sub, Email: g.email, RequestID: g.requestID, Client: g.client, Outcome: OutcomeOK}
	switch {
	case g.seenDenied:
		o.Outcome = OutcomeDenied
	case g.seenError:
		o.Outcome = OutcomeError
	}
	if g.otherPath != "" && len(g.calls) == 0 && !g.mint {
		o.Operation, o.Path = OpOther, g.otherPath
		return o
	}
	// What the calls name: the credential first, else the integration.
	for _, c := range g.calls {
		if o.Credential == "" && c.t.credential != "" {
			o.Credential = c.t.credential
		}
		if o.Integration == "" && c.t.integration != "" && (c.t.folder == "credentials" || c.t.folder == "services") {
			o.Integration = c.t.integration
		}
		if c.t.folder == "credentials" && c.t.credential != "" && c.version > 0 {
			o.Version = c.version
		}
	}
	writes := []string{"create", "update"}
	switch {
	case g.mint && g.sub == credgate.SystemSubject: // credgate's token for its own work
		o.Operation = OpBookkeeping
	case g.mint:
		o.Operation = OpMint
		o.Integration, o.Credential, o.Version = "", "", 0
	case g.has("credential-locks", "data", writes...):
		o.Operation = OpRotate
	case g.has("credential-index", "data", writes...):
		o.Operation = OpCreate
	case g.has("services", "metadata", "delete"):
		o.Operation, o.Credential, o.Version = OpDelete, "", 0
	case g.has("credentials", "metadata", "delete"):
		o.Operation = OpDelete
	case g.has("credentials", "data", writes...):
		o.Operation = OpUpdate
	case g.has("credentials", "data", "read"):
		o.Operation = OpReadValues
	case g.has("services", "data", "create") && !g.has("services", "data", "update"):
		o.Operation, o.Credential, o.Version = OpCreate, "", 0
	case g.has("services", "data", writes...) || g.has("service-names", "data", writes...):
		o.Operation, o.Credential, o.Version = OpUpdate, "", 0
	case g.hasList():
		o.Operation = OpList
		if o.Credential != "" { // a list reads each credential's description
			o.Credential, o.Version = "", 0
		}
	case g.has("credentials", "metadata", "read") || g.has("services", "data", "read") || g.has("credential-index", "data", "read"):
		o.Operation = OpReadMetadata
	default:
		o.Operation = OpBookkeeping
	}
	o.Grant = g.grantUsed(o)
	return o
}

// grantUsed names the grant o's caller reached o's integration through:
// none when its tenant-wide roles grant what o needs (or o names no
// integration), else the first of its token's grants whose role grants it
// and which names the integration. The token's metadata lists its grants
// as id:role:pattern|pattern, comma-separated (vaultstore's grantNote).
func (g *group) grantUsed(o Op) string {
	if o.Integration == "" || g.grants == "" {
		return ""
	}
	var p policy.Permission
	switch o.Operation {
	case OpReadValues:
		p = policy.CredentialsRead
	case OpReadMetadata, OpList:
		p = policy.CredentialsMetaRead
	case OpCreate, OpUpdate, OpRotate, OpDelete:
		p = policy.CredentialsWrite
		if o.Credential == "" {
			p = policy.ServicesWrite
		}
	default:
		return ""
	}
	a := policy.Access{Roles: strings.Split(g.roles, ",")}
	for _, note := range strings.Split(g.grants, ",") {
		id, rest, _ := strings.Cut(note, ":")
		role, patterns, _ := strings.Cut(rest, ":")
		a.Scopes = append(a.Scopes, policy.Scope{ID: id, Role: policy.Role(role), Integrations: strings.Split(patterns, "|")})
	}
	if a.Tenantwide(p) {
		return ""
	}
	if through := a.Through(p, o.Integration); len(through) > 0 {
		return through[0].ID
	}
	return ""
}

// denial reports whether a Vault error is a refusal of the caller.
func denial(err string) bool { return strings.Contains(err, "permission denied") }
