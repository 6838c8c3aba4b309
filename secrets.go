package credgate

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// SecretField is one of a credential's named secret fields: its name in the
// credentials family and its key in the services family's credentials map.
type SecretField struct {
	Name       string // apiKey
	ServiceKey string // api_key
}

// secretFields is the one list of secret fields, in the order API.md gives
// them. Everything that names a secret field (both API families, the
// per-type rules below, the store) reads it from here.
var secretFields = []SecretField{
	{"apiKey", "api_key"},
	{"apiSecret", "api_secret"},
	{"clientId", "client_id"},
	{"clientSecret", "client_secret"},
	{"username", "username"},
	{"password", "password"},
	{"webhookSecret", "webhook_secret"},
	{"accessToken", "access_token"},
	{"refreshToken", "refresh_token"},
}

// Lookups into secretFields; read-only.
var (
	secretByName       = indexSecretFields(func(f SecretField) string { return f.Name })
	secretByServiceKey = indexSecretFields(func(f SecretField) string { return f.ServiceKey })
)

func indexSecretFields(key func(SecretField) string) map[string]SecretField {
	m := make(map[string]SecretField, len(secretFields))
	for _, f := range secretFields {
		m[key(f)] = f
	}
	return m
}

// SecretFields returns the named secret fields in their documented order.
func SecretFields() []SecretField { return append([]SecretField(nil), secretFields...) }

// IsSecretField reports whether name is a named secret field (apiKey, ...).
func IsSecretField(name string) bool {
	_, ok := secretByName[name]
	return ok
}

// Limits of a credential's secret values.
const (
	MaxSecretBytes  = 8192
	MaxCustomFields = 32
)

// Secrets are a credential's secret values: the named fields under their
// name (apiKey) and custom fields under CustomKey(key). A custom field is
// any other value a service needs (environment, region, ...).
type Secrets map[string]string

const customPrefix = "custom."

// CustomKeyPattern is the rule for the key of a custom field.
const CustomKeyPattern = `^[A-Za-z0-9_.-]{1,64}$`

var customKeyPattern = regexp.MustCompile(CustomKeyPattern)

// ValidCustomKey reports whether key may name a custom field.
func ValidCustomKey(key string) bool { return customKeyPattern.MatchString(key) }

// CustomKey is where the custom field key is kept in Secrets.
func CustomKey(key string) string { return customPrefix + key }

// Custom returns the custom fields by their key; nil when there is none.
func (s Secrets) Custom() map[string]string {
	var out map[string]string
	for k, v := range s {
		if key, ok := strings.CutPrefix(k, customPrefix); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[key] = v
		}
	}
	return out
}

// Clone returns a copy of s (never nil).
func (s Secrets) Clone() Secrets {
	out := make(Secrets, len(s))
	maps.Copy(out, s)
	return out
}

// ServiceKeys returns s as the services family shows it: one map, named
// fields under their service key (api_key), custom fields under their own.
func (s Secrets) ServiceKeys() map[string]string {
	out := make(map[string]string, len(s))
	for k, v := range s {
		if key, ok := strings.CutPrefix(k, customPrefix); ok {
			out[key] = v
		} else if f, ok := secretByName[k]; ok {
			out[f.ServiceKey] = v
		}
	}
	return out
}

// SecretsFromServiceKeys reads the services family's map: a key naming a
// secret field (api_key) sets that field, any other key a custom field.
func SecretsFromServiceKeys(m map[string]string) Secrets {
	out := make(Secrets, len(m))
	for k, v := range m {
		if f, ok := secretByServiceKey[k]; ok {
			out[f.Name] = v
		} else {
			out[CustomKey(k)] = v
		}
	}
	return out
}

// field is the name a problem with key is reported under.
func (s Secrets) field(key string) string {
	if ck, ok := strings.CutPrefix(key, customPrefix); ok {
		return "customFields." + ck
	}
	return key
}

// check reports empty, oversized or unknown values and too many custom
// fields.
func (s Secrets) check(fe FieldErrors) {
	custom := 0
	for _, k := range slices.Sorted(maps.Keys(s)) {
		v := s[k]
		switch ck, isCustom := strings.CutPrefix(k, customPrefix); {
		case isCustom && !ValidCustomKey(ck):
			fe.Add("customFields", "keys match "+CustomKeyPattern)
			continue
		case !isCustom && !IsSecretField(k):
			fe.Add(k, "is not a secret field")
			continue
		case isCustom:
			custom++
		}
		switch {
		case v == "":
			fe.Add(s.field(k), "must not be empty")
		case len(v) > MaxSecretBytes:
			fe.Add(s.field(k), fmt.Sprintf("is at most %d bytes", MaxSecretBytes))
		}
	}
	if custom > MaxCustomFields {
		fe.Add("customFields", fmt.Sprintf("at most %d", MaxCustomFields))
	}
}

// InServiceTerms renames the fields of problems found in a credential to
// the services family's names: apiKey becomes credentials.api_key and
// customFields.region credentials.region.
func (fe FieldErrors) InServiceTerms() FieldErrors {
	out := FieldErrors{}
	for k, v := range fe {
		switch {
		case k == "customFields":
			k = "credentials"
		case strings.HasPrefix(k, "customFields."):
			k = "credentials." + strings.TrimPrefix(k, "customFields.")
		case IsSecretField(k):
			k = "credentials." + secretByName[k].ServiceKey
		case k == "expiresAt":
			k = "metadata.expires_at"
		}
		out.Add(k, v)
	}
	return out
}
