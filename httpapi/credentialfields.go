package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"time"

	"github.com/credgate/credgate"
)

// A credential as the credentials family answers it and reads it from a
// body. The one mapping between the domain type and the wire is here: the
// view is the domain type (its JSON names) and three fields the answer
// adds; what a body may set is the table credentialFields; the secret
// fields are credgate.SecretFields; every other name of the view is
// read-only, accepted and ignored so that a client can send back what it
// read.

// masked stands in for a secret value in answers that must not carry one.
// A client that sends an answer back must not store it as the value.
const (
	masked      = "********"
	maskRefused = "is the mask credgate answers instead of a value; send the value, or leave the field out"
)

// reveal says how secret values appear in an answer.
type reveal int

const (
	omitSecrets reveal = iota // lists, versions: absent
	maskSecrets               // writes: present as ********
	showSecrets               // the explicit GET: the values
)

type tenantRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// credentialView is a credential as the credentials family answers it:
// the domain type's fields (optional ones left out when unset, never
// null), the status the reader sees, the custom fields and the tenant.
// The secret fields (credgate.SecretFields) are added by appendTo, so
// that the one list of them decides what an answer may carry.
type credentialView struct {
	credgate.Credential
	// Status is what the reader sees (credgate.Credential.EffectiveStatus),
	// judged when the store read the credential.
	Status       string            `json:"status"`
	CustomFields map[string]string `json:"customFields,omitempty"`
	Tenant       tenantRef         `json:"tenant"`

	reveal reveal
}

// viewOf is cr as the caller in ctx is answered it.
func viewOf(ctx context.Context, cr *credgate.Credential, r reveal) *credentialView {
	p := credgate.PrincipalFrom(ctx)
	at := cr.ReadAt
	if at.IsZero() {
		at = time.Now()
	}
	v := &credentialView{Credential: *cr, Status: cr.EffectiveStatus(at), Tenant: tenantRef{ID: p.Tenant, Name: p.TenantName}, reveal: r}
	if v.Scopes == nil {
		v.Scopes = []string{}
	}
	if v.Metadata == nil {
		v.Metadata = map[string]any{}
	}
	if r == omitSecrets {
		v.Secrets = nil
		return v
	}
	v.CustomFields = cr.Secrets.Custom()
	if r == maskSecrets {
		for k := range v.CustomFields {
			v.CustomFields[k] = masked
		}
	}
	return v
}

// MarshalJSON is appendTo on its own (a view inside a value marshal
// encodes: a page of them).
func (v *credentialView) MarshalJSON() ([]byte, error) {
	a := newAnswer()
	defer a.release()
	if err := v.appendTo(a); err != nil {
		return nil, err
	}
	return bytes.Clone(a.Bytes()), nil
}

// secretFields is credgate.SecretFields, copied once: every credential
// answer walks it.
var secretFields = credgate.SecretFields()

// appendTo writes the view's fields, then each secret field that is set,
// in credgate.SecretFields order; nothing when it fails.
func (v *credentialView) appendTo(a *answer) error {
	type fields credentialView // without this method
	start := a.Len()
	if err := a.value((*fields)(v)); err != nil {
		return err
	}
	if len(v.Secrets) == 0 {
		return nil
	}
	a.Truncate(a.Len() - 1) // the object's "}": the secret fields follow
	for _, f := range secretFields {
		val, ok := v.Secrets[f.Name]
		if !ok {
			continue
		}
		if v.reveal == maskSecrets {
			val = masked
		}
		a.WriteString(`,"`) // field names are plain identifiers
		a.WriteString(f.Name)
		a.WriteString(`":`)
		if err := a.value(val); err != nil {
			a.Truncate(start)
			return err
		}
	}
	a.WriteByte('}')
	return nil
}

// credentialField is one descriptive field a body may set: its name, the
// JSON kind it takes, and how its value is set on a credential (a problem
// with it goes to fe under its name).
type credentialField struct {
	name string
	kind string
	set  func(c *credgate.Credential, raw json.RawMessage, fe credgate.FieldErrors)
}

// credentialFields is what a body may set of a credential, beside the
// secret fields, customFields and the rotate-only and create-only ones
// (credentialInput).
var credentialFields = []credentialField{
	text("credentialName", func(c *credgate.Credential) *string { return &c.CredentialName }),
	text("description", func(c *credgate.Credential) *string { return &c.Description }),
	text("authType", func(c *credgate.Credential) *string { return &c.AuthType }),
	text("status", func(c *credgate.Credential) *string { return &c.Status }),
	text("tokenEndpoint", func(c *credgate.Credential) *string { return &c.TokenEndpoint }),
	text("authorizationEndpoint", func(c *credgate.Credential) *string { return &c.AuthorizationEndpoint }),
	text("refreshLeadTime", func(c *credgate.Credential) *string { return &c.RefreshLeadTime }),
	{"scopes", "array of strings", func(c *credgate.Credential, raw json.RawMessage, fe credgate.FieldErrors) {
		var scopes *[]string // null changes nothing
		if json.Unmarshal(raw, &scopes) != nil {
			fe.Add("scopes", "must be a JSON array of strings")
		} else if scopes != nil {
			c.Scopes = *scopes
		}
	}},
	{"metadata", "object", func(c *credgate.Credential, raw json.RawMessage, fe credgate.FieldErrors) {
		object(fe, "metadata", raw, &c.Metadata)
	}},
	{"autoRefresh", "boolean", func(c *credgate.Credential, raw json.RawMessage, fe credgate.FieldErrors) {
		if json.Unmarshal(raw, &c.AutoRefresh) != nil {
			fe.Add("autoRefresh", "must be a JSON boolean")
		}
	}},
	text("rotator", func(c *credgate.Credential) *string { return &c.Rotator }),
	text("tokenEndpointAuthMethod", func(c *credgate.Credential) *string { return &c.TokenEndpointAuthMethod }),
	{"rotationPolicy", "object", func(c *credgate.Credential, raw json.RawMessage, fe credgate.FieldErrors) {
		var p *credgate.RotationPolicy // null removes the credential's own policy
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if d.Decode(&p) != nil {
			fe.Add("rotationPolicy", `must be {"every": "90d"}, with "keepPrevious" optional`)
			return
		}
		c.RotationPolicy = p
	}},
	instant("expiresAt", func(c *credgate.Credential) **time.Time { return &c.ExpiresAt }),
	instant("revokeAt", func(c *credgate.Credential) **time.Time { return &c.RevokeAt }),
}

// text is a string field at field(c).
func text(name string, field func(*credgate.Credential) *string) credentialField {
	return credentialField{name, "string", func(c *credgate.Credential, raw json.RawMessage, fe credgate.FieldErrors) {
		if json.Unmarshal(raw, field(c)) != nil {
			fe.Add(name, "must be a JSON string")
		}
	}}
}

// instant is an RFC 3339 time, or null to clear it, at field(c).
func instant(name string, field func(*credgate.Credential) **time.Time) credentialField {
	return credentialField{name, "string", func(c *credgate.Credential, raw json.RawMessage, fe credgate.FieldErrors) {
		*field(c) = timeOrNull(fe, name, raw)
	}}
}

// credentialReadOnly are the names of the view a body may carry but not
// set: every JSON name of credentialView (its embedded credential's
// included) that is neither in credentialFields, nor a secret field, nor
// one the input reads itself.
var credentialReadOnly = func() map[string]bool {
	out := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				out[name] = true
			}
		}
	}
	walk(reflect.TypeFor[credentialView]())
	for _, f := range credentialFields {
		delete(out, f.name)
	}
	for _, name := range []string{"id", "integrationId", "customFields"} {
		delete(out, name)
	}
	return out
}()

// credentialInput is what a client sent for a credential: descriptive
// fields (credentialFields, kept raw until applied), the secret fields and
// customFields, whose values are strings or null to remove them, and the
// fields of one route: id and integrationId (create), generate,
// previousRevokeAt and revokeWhenMigrated (rotate).
type credentialInput struct {
	ID                 *string // on create: a client-chosen id; else the path's
	IntegrationID      *string
	fields             map[string]json.RawMessage // by credentialFields name
	Secrets            map[string]*string         // by field name
	CustomFields       map[string]*string
	Generate           *bool           // rotate only
	Via                *string         // rotate only: "rotator"
	PreviousRevokeAt   json.RawMessage // rotate only
	RevokeWhenMigrated *bool           // rotate only, with PreviousRevokeAt
}

// UnmarshalJSON reads the input strictly: every unknown field and every
// value of the wrong JSON type is named in one VALIDATION_FAILED.
func (in *credentialInput) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		return badRequest("the body must be a JSON object")
	}
	own := map[string]struct {
		dst  any
		kind string
	}{
		"id": {&in.ID, "string"}, "integrationId": {&in.IntegrationID, "string"}, "customFields": {&in.CustomFields, "object"},
		"generate": {&in.Generate, "boolean"}, "previousRevokeAt": {&in.PreviousRevokeAt, "string"},
		"revokeWhenMigrated": {&in.RevokeWhenMigrated, "boolean"}, "via": {&in.Via, "string"},
	}
	fe := credgate.FieldErrors{}
	for name, v := range raw {
		if f, ok := own[name]; ok {
			if err := json.Unmarshal(v, f.dst); err != nil {
				fe.Add(name, "must be a JSON "+f.kind)
			}
			continue
		}
		if field, ok := fieldNamed(name); ok {
			if !jsonKindIs(v, field.kind) {
				fe.Add(name, "must be a JSON "+field.kind)
				continue
			}
			if in.fields == nil {
				in.fields = map[string]json.RawMessage{}
			}
			in.fields[name] = v
			continue
		}
		switch {
		case credgate.IsSecretField(name):
			var s *string
			if err := json.Unmarshal(v, &s); err != nil {
				fe.Add(name, "must be a string or null")
				continue
			}
			if in.Secrets == nil {
				in.Secrets = map[string]*string{}
			}
			in.Secrets[name] = s
		case credentialReadOnly[name]:
		default:
			fe.Add(name, "is not a field of this resource")
		}
	}
	if len(fe) > 0 {
		return &decodeError{fe}
	}
	return nil
}

func fieldNamed(name string) (credentialField, bool) {
	for _, f := range credentialFields {
		if f.name == name {
			return f, true
		}
	}
	return credentialField{}, false
}

// jsonKindIs reports whether raw is of kind, or null (which clears a time,
// empties metadata and changes nothing else).
func jsonKindIs(raw json.RawMessage, kind string) bool {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return false
	}
	switch c := t[0]; {
	case c == 'n':
		return string(t) == "null"
	case kind == "string":
		return c == '"'
	case kind == "object":
		return c == '{'
	case kind == "boolean":
		return c == 't' || c == 'f'
	case kind == "array of strings":
		var ss []string
		return json.Unmarshal(t, &ss) == nil
	}
	return false
}

// sameID refuses an id in the body of a write to another credential than
// the path names (a client sending back what it read sends the same id).
func (in *credentialInput) sameID(path string) error {
	if in.ID == nil {
		return nil
	}
	if id, _ := credgate.CanonicalCredentialID(*in.ID); id != path {
		return credgate.FieldErrors{"id": "must name the credential in the path"}.Err()
	}
	return nil
}

// hasSecrets reports whether the input sets or removes any secret value.
func (in *credentialInput) hasSecrets() bool { return len(in.Secrets)+len(in.CustomFields) > 0 }

// descriptive reports whether the input names a non-secret field.
func (in *credentialInput) descriptive() bool { return len(in.fields) > 0 || in.IntegrationID != nil }

// apply sets what the input carries on c. Whether the result is a valid
// credential is the credential's rule (credgate.Credential.Validate),
// checked by the store before it writes.
func (in *credentialInput) apply(c *credgate.Credential) error {
	fe := credgate.FieldErrors{}
	for _, f := range credentialFields {
		if raw, ok := in.fields[f.name]; ok {
			f.set(c, raw, fe)
		}
	}
	if c.Secrets == nil {
		c.Secrets = credgate.Secrets{}
	}
	set := func(key, field string, v *string) {
		switch {
		case v == nil:
			delete(c.Secrets, key)
		case *v == masked:
			fe.Add(field, maskRefused)
		default:
			c.Secrets[key] = *v
		}
	}
	for name, v := range in.Secrets {
		set(name, name, v)
	}
	for key, v := range in.CustomFields {
		set(credgate.CustomKey(key), "customFields."+key, v)
	}
	return fe.Err()
}

// endpoint is the tokenEndpoint the input sets, or nil.
func (in *credentialInput) endpoint() *string {
	raw, ok := in.fields["tokenEndpoint"]
	if !ok {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	return &s
}
