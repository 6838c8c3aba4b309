package vaultstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/credgate/credgate"
)

// A credential's descriptive fields are projected into the KV
// custom_metadata of its path: a viewer's policy may read the metadata but
// never the data, so this is how a viewer sees a credential without its
// values. The projection also holds the version it describes, a note per
// recent version saying what changed, and lastAccessedAt.
//
// custom_metadata takes at most 64 keys of at most 512 bytes, so the
// descriptive fields are stored as base64url chunks.
const (
	infoChunkSize = 500
	maxInfoChunks = 36
	versionNotes  = 10 // the newest versions that keep a change note
	metaInfoCount = "info.n"
)

// hotKeys are the keys of a credential path's custom_metadata that every
// read uses. Their JSON names are the keys, written here once: the names
// the rest of the store uses are read from them.
type hotKeys struct {
	LastAccessedAt string `json:"lastAccessedAt,omitempty"`
	Projected      string `json:"projected,omitempty"`  // the version the projection describes
	Watch          string `json:"monitor,omitempty"`    // credgate.Watch: the monitor's bookkeeping
	Rotation       string `json:"rotation,omitempty"`   // credgate.RotationStatus: the latest rotation through a rotator
	Broken         string `json:"connection,omitempty"` // a broken OAuth2 connection (credgate.Credential.BrokenMark)
}

var (
	metaLastAccess = jsonName[hotKeys]("LastAccessedAt")
	metaProjected  = jsonName[hotKeys]("Projected")
	metaWatch      = jsonName[hotKeys]("Watch")
	metaRotation   = jsonName[hotKeys]("Rotation")
	metaBroken     = jsonName[hotKeys]("Broken")
)

// jsonName is the JSON name of field of T.
func jsonName[T any](field string) string {
	f, _ := reflect.TypeFor[T]().FieldByName(field)
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

// customMetadata is a path's custom_metadata as a read brings it: the
// hot keys are decoded with the rest of the answer; the rest (the
// projection's chunks and notes, which only a writer needs) is decoded on
// demand from the answer, which it keeps.
type customMetadata struct {
	hotKeys
	answer []byte // Vault's whole answer (decodeAnswer)
}

// all decodes every key.
func (c *customMetadata) all() map[string]any {
	var a struct {
		Data struct {
			Metadata struct {
				CustomMetadata map[string]any `json:"custom_metadata"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if len(c.answer) > 0 {
		_ = json.Unmarshal(c.answer, &a)
	}
	return a.Data.Metadata.CustomMetadata
}

// errTooLarge is returned when the descriptive fields do not fit.
var errTooLarge = &credgate.Error{
	Code:    credgate.EValidationFailed,
	Message: "the credential's descriptive fields are too large together (about 13 KB at most)",
	Fields:  credgate.FieldErrors{credgate.WholeBody: "the body holds descriptive fields too large together (description, metadata, scopes and endpoints: about 13 KB at most)"},
}

// projection renders info, the record at version, for custom_metadata. old
// is the current custom_metadata: chunks and notes no longer wanted are
// removed (nil).
func projection(info credInfo, version int, old map[string]any) (map[string]any, error) {
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding.EncodeToString(b)
	n := (len(enc) + infoChunkSize - 1) / infoChunkSize
	if n > maxInfoChunks {
		return nil, errTooLarge
	}
	m := map[string]any{
		"integrationId":              info.IntegrationID,
		"credentialName":             truncate(info.CredentialName, 200),
		"authType":                   info.AuthType,
		"status":                     info.Status,
		metaProjected:                strconv.Itoa(version),
		metaInfoCount:                strconv.Itoa(n),
		"v." + strconv.Itoa(version): info.Change + "|" + truncate(info.ChangedBy, 400),
	}
	for i := range n {
		m["info."+strconv.Itoa(i)] = enc[i*infoChunkSize : min((i+1)*infoChunkSize, len(enc))]
	}
	for k := range old {
		if rest, ok := strings.CutPrefix(k, "info."); ok {
			if i, err := strconv.Atoi(rest); err == nil && i >= n {
				m[k] = nil
			}
		}
		if rest, ok := strings.CutPrefix(k, "v."); ok {
			if v, err := strconv.Atoi(rest); err == nil && v <= version-versionNotes {
				m[k] = nil
			}
		}
	}
	return m, nil
}

// fitsProjection refuses, before anything is written, a credential whose
// descriptive fields the projection cannot hold.
func fitsProjection(info credInfo) error {
	_, err := projection(info, 1, nil)
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // not in the middle of a UTF-8 sequence
		n--
	}
	return s[:n]
}

// fromProjection reads a credential's descriptive fields from its
// custom_metadata; ok is false when there is no projection.
func fromProjection(meta map[string]any) (*credInfo, bool) {
	e, ok := entryOf(meta, 0)
	if !ok {
		return nil, false
	}
	return infoFrom(e.Info, e.Hot)
}

// projectedInfo is the JSON of the description projected into a path's
// custom_metadata; ok is false when there is none.
func projectedInfo(meta map[string]any) (json.RawMessage, bool) {
	n, _ := strconv.Atoi(str(meta[metaInfoCount]))
	if n == 0 {
		return nil, false
	}
	var enc strings.Builder
	for i := range n {
		enc.WriteString(str(meta["info."+strconv.Itoa(i)]))
	}
	b, err := base64.RawURLEncoding.DecodeString(enc.String())
	if err != nil {
		return nil, false
	}
	return b, true
}

// infoFrom is the description whose JSON is info, with what the hot keys
// say (the version projected, lastAccessedAt, the monitor's bookkeeping,
// the rotation status, a broken connection); ok is false without a
// projected version or with JSON that does not decode.
func infoFrom(info json.RawMessage, hot hotKeys) (*credInfo, bool) {
	version, _ := strconv.Atoi(hot.Projected)
	if version == 0 {
		return nil, false
	}
	var c credInfo
	if json.Unmarshal(info, &c) != nil {
		return nil, false
	}
	c.Version = version
	c.LastAccessedAt = parseTime(hot.LastAccessedAt)
	c.ApplyWatch(hot.Watch)
	c.Rotation = credgate.DecodeRotationStatus(hot.Rotation)
	c.ApplyBrokenMark(hot.Broken)
	return &c, true
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func parseTime(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil
	}
	return &t
}

// project writes the projection of info (written at version) over old, the
// custom_metadata the writer read with the data it changed. Then it checks
// for a newer version: if that version's own writer has not projected it
// yet, or our patch overwrote its projection, it projects the newest
// version. Every writer checks after its own patch, so the last one leaves
// the projection current.
func (k *session) project(ctx context.Context, service, cred string, info credInfo, version int, old map[string]any) error {
	path := k.credPath(service, cred)
	for range 3 {
		m, err := projection(info, version, old)
		if err != nil {
			return err
		}
		if err := k.patchMetadata(ctx, "credential_project", path, m); err != nil {
			return err
		}
		meta, err := k.readMetadata(ctx, "credential_metadata_read", path)
		if err != nil {
			return err
		}
		if p, _ := strconv.Atoi(str(meta.CustomMetadata[metaProjected])); p >= meta.CurrentVersion {
			return nil
		}
		d, sec, err := k.readCredData(ctx, service, cred, 0)
		if err != nil {
			return err
		}
		info, version, old = d.Info, sec.Version, meta.CustomMetadata
	}
	return nil
}

// repairProjection projects d, read with sec, when the projection describes
// an older version: a writer whose request failed between its data write
// and its projection left it behind, and the next writer finishes its work
// (noting it in the service's inventory).
func (k *session) repairProjection(ctx context.Context, service, cred string, d *credData, sec *kvMeta) error {
	if p, _ := strconv.Atoi(sec.CustomMetadata.Projected); p >= sec.Version {
		return nil
	}
	if err := k.project(ctx, service, cred, d.Info, sec.Version, sec.CustomMetadata.all()); err != nil {
		return err
	}
	return k.note(ctx, service, cred, "")
}
