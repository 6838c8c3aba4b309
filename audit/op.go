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
	// OpOther is a Vault call credgate did not make: without a token, or
	// with a token credgate did not mint. Never an operation of a
	// credgate user; shown with --all only.
	OpOther = "not credgate's"
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

// call is one Vault call of a group.
type call struct {
	op      string // Vault's operation: read, list, create, update, patch, delete
	t       target
	version int
	denied  bool
	failed  bool
}

// group is the Vault calls of one credgate request by one token: calls
// carrying the same credgate correlation id (never the caller's
// X-Request-Id) and the same caller token's subject and tenant.
type group struct {
	first, last           time.Time
	tenant, sub, email    string
	roles, grants         string // the caller token's metadata: its roles and grants
	requestID, client     string
	calls                 []call
	mint                  bool
	own                   bool   // credgate's own calls (its token, its paths)
	foreign               bool   // a call credgate did not make
	otherPath             string // the path of that call
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

// calls is a run of Vault calls named together.
type calls []call

// has reports whether cs hold a call of one of ops on folder (via api, ""
// for either), on a record (not a list).
func (cs calls) has(folder, api string, ops ...string) bool {
	for _, c := range cs {
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

// lists reports whether cs list services or credentials.
func (cs calls) lists() bool {
	for _, c := range cs {
		if c.op == "list" && (c.t.folder == "services" || c.t.folder == "credentials") {
			return true
		}
	}
	return false
}

// writesService reports whether cs change a service (not only read it).
func (cs calls) writesService() bool {
	return cs.has("services", "", "create", "update", "patch", "delete") || cs.has("service-names", "data", "create", "update")
}

// outcome is how cs ended: denied when Vault refused any, else error
// when any failed.
func (cs calls) outcome() string {
	out := OutcomeOK
	for _, c := range cs {
		switch {
		case c.denied:
			return OutcomeDenied
		case c.failed:
			out = OutcomeError
		}
	}
	return out
}

// ops names what the group did: one operation per credential it touched
// (a request that reads or changes several is several operations), and
// one for the service when it changed one; a list is one operation.
func (g *group) ops() []Op {
	o := Op{Time: g.first, Tenant: g.tenant, Subject: g.sub, Email: g.email, RequestID: g.requestID, Client: g.client, Outcome: OutcomeOK}
	switch {
	case g.seenDenied:
		o.Outcome = OutcomeDenied
	case g.seenError:
		o.Outcome = OutcomeError
	}
	switch {
	case g.foreign:
		o.Operation, o.Path = OpOther, g.otherPath
		o.Subject, o.Email = "", ""
		return []Op{o}
	case g.mint && g.sub == credgate.SystemSubject: // credgate's token for its own work
		o.Operation = OpBookkeeping
		return []Op{o}
	case g.mint:
		o.Operation = OpMint
		return []Op{o}
	case g.own:
		o.Operation = OpBookkeeping
		return []Op{o}
	}
	all := calls(g.calls)
	var order []string
	parts := map[string]calls{}
	var base calls // the calls that name no credential
	for _, c := range all {
		if c.t.credential == "" {
			base = append(base, c)
			continue
		}
		if _, ok := parts[c.t.credential]; !ok {
			order = append(order, c.t.credential)
		}
		parts[c.t.credential] = append(parts[c.t.credential], c)
	}
	if len(order) <= 1 || all.lists() {
		return []Op{g.name(o, all)}
	}
	var out []Op
	if base.writesService() {
		one := o
		one.Outcome = base.outcome()
		out = append(out, g.name(one, base))
	}
	for _, id := range order {
		one := o
		one.Outcome = parts[id].outcome()
		named := g.name(one, parts[id])
		if named.Integration == "" {
			named.Integration = g.name(o, base).Integration
		}
		out = append(out, named)
	}
	return out
}

// name names what cs did, filling o.
func (g *group) name(o Op, cs calls) Op {
	// What the calls name: the credential first, else the integration.
	for _, c := range cs {
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
	case cs.has("credential-locks", "data", writes...):
		o.Operation = OpRotate
	case cs.has("credential-index", "data", writes...):
		o.Operation = OpCreate
	case cs.has("services", "metadata", "delete"):
		o.Operation, o.Credential, o.Version = OpDelete, "", 0
	case cs.has("credentials", "metadata", "delete"):
		o.Operation = OpDelete
	case cs.has("credentials", "data", writes...):
		o.Operation = OpUpdate
	case cs.has("credentials", "data", "read"):
		o.Operation = OpReadValues
	case cs.has("services", "data", "create") && !cs.has("services", "data", "update"):
		o.Operation, o.Credential, o.Version = OpCreate, "", 0
	case cs.writesService():
		o.Operation, o.Credential, o.Version = OpUpdate, "", 0
	case cs.lists():
		o.Operation = OpList
		if o.Credential != "" { // a list reads each credential's description
			o.Credential, o.Version = "", 0
		}
	case cs.has("credentials", "metadata", "read") || cs.has("services", "data", "read") || cs.has("credential-index", "data", "read"):
		o.Operation = OpReadMetadata
	default:
		o.Operation = OpBookkeeping
	}
	if g.sub == credgate.SystemSubject && (o.Operation == OpList || o.Operation == OpReadMetadata) {
		// credgate looking things up for a request or its monitor: what
		// it then does is the operation.
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
