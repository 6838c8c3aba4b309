package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// What every handler does with a request before it calls the store: read
// ids from the path, the expected version from If-Match, and JSON bodies,
// each refused with a clear 400 when malformed.

func badRequest(format string, args ...any) error {
	return credgate.Errorf(credgate.EInvalidRequest, format, args...)
}

func invalidParam(format string, args ...any) error {
	return credgate.Errorf(credgate.EInvalidParameter, format, args...)
}

// idRule says credgate.IDPattern's rule after the field's name.
const idRule = "must match " + credgate.IDPattern + " and must not contain '..'"

// serviceID reads and validates the :id path parameter as a service id.
func serviceID(c *gin.Context) (string, error) {
	id := c.Param("id")
	if !credgate.ValidID(id) {
		return "", badRequest("service id " + idRule)
	}
	return id, nil
}

// credentialID reads the :id path parameter as a credential id, in its
// canonical form: cred-<uuid> and the bare UUID name the same credential.
func credentialID(c *gin.Context) (string, error) {
	id, ok := credgate.CanonicalCredentialID(c.Param("id"))
	if !ok {
		return "", invalidParam("credentialId must be cred-<uuid> or a UUID")
	}
	return id, nil
}

// ifMatch reads If-Match: "<version>" (0 when absent), the version a
// conditional write expects (credgate.CheckVersion). "*" (any current
// version, RFC 9110 13.1.1) asks only that the record exist, which every
// write of a record asks anyway: 0.
func ifMatch(c *gin.Context) (int, error) {
	v := strings.TrimSpace(c.GetHeader("If-Match"))
	if v == "" || v == "*" {
		return 0, nil
	}
	v = strings.TrimPrefix(v, "W/")
	if uq, err := strconv.Unquote(v); err == nil {
		v = uq
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, badRequest(`If-Match must be a version as returned in ETag, such as "3"`)
	}
	return n, nil
}

// etag is the ETag of a record at version.
func etag(version int) string { return strconv.Quote(strconv.Itoa(version)) }

// decodeJSON decodes one JSON value strictly: unknown fields and trailing
// data are refused, and the error names the field that was wrong.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("the body must hold exactly one JSON object")
	}
	return nil
}

// errEmptyBody is the cause of the error for an empty body, so that a
// handler may accept one.
var errEmptyBody = io.EOF

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var de *decodeError
	var ce *credgate.Error
	switch {
	case asTooLarge(err):
		return bodyError(err)
	case errors.Is(err, io.EOF):
		return &credgate.Error{Code: credgate.EInvalidRequest, Message: "the body is empty; a JSON object is expected", Err: errEmptyBody}
	case errors.As(err, &de):
		return de.fields.Err()
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return badRequest("the body must be a JSON object")
		}
		return credgate.FieldErrors{field: "must be a JSON " + jsonKind(te.Type.Kind().String())}.Err()
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return credgate.FieldErrors{name: "is not a field of this resource"}.Err()
	}
	return badRequest("the body is not valid JSON")
}

// decodeError is what a custom decoder returns for the fields it refuses.
type decodeError struct{ fields credgate.FieldErrors }

func (e *decodeError) Error() string { return e.fields.Sentence() }

func jsonKind(k string) string {
	switch k {
	case "string", "ptr":
		return "string"
	case "map", "struct":
		return "object"
	case "slice":
		return "array"
	case "bool":
		return "boolean"
	}
	return "value"
}

func bodyError(err error) error {
	if asTooLarge(err) {
		return credgate.Errorf(credgate.EPayloadTooLarge, "the request body is too large")
	}
	return badRequest("the body could not be read")
}

// asTooLarge reports whether err is the body limit tripping.
func asTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// object decodes raw as a JSON object for field: absent (nil raw) leaves
// *dst alone, null sets it empty. The object's limits are the record's
// rules (Validate).
func object(fe credgate.FieldErrors, field string, raw json.RawMessage, dst *map[string]any) {
	switch {
	case raw == nil:
	case string(raw) == "null":
		*dst = map[string]any{}
	default:
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			fe.Add(field, "must be a JSON object")
			return
		}
		*dst = m
	}
}
