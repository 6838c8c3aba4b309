package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// answerOf is what writeEnvelope answers for data.
func answerOf(t *testing.T, data any, next string, warnings ...string) []byte {
	t.Helper()
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	for _, s := range warnings {
		warn(c, s)
	}
	writeEnvelope(c, 200, "read <ok> & \"done\"", data, next)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	return w.Body.Bytes()
}

// TestEnvelopeIsWrittenInPlaceAsMarshalWouldWriteIt: the envelope, written
// into one pooled buffer, is what encoding every part on its own made of
// it: the same values (HTML left as it is, secrets exact whatever their
// characters), the secret fields after the others in the documented
// order, pages as arrays, warnings and the cursor when there are any; and
// one answer's bytes are not touched by the next one's.
func TestEnvelopeIsWrittenInPlaceAsMarshalWouldWriteIt(t *testing.T) {
	hostile := "k\"ey\\ <b>&amp;</b> \x00\x1f\t\n é ☃ \u2028 🗝"
	view := &credentialView{
		Credential: credgate.Credential{ID: "cred-1", IntegrationID: "stripe", CredentialName: "live <primary>", AuthType: "basic_auth",
			Secrets: credgate.Secrets{"password": hostile, "username": "u", "apiKey": "k", "custom.region": "eu"}},
		Status: "active", CustomFields: map[string]string{"region": "eu"}, Tenant: tenantRef{ID: "t1", Name: "T & 1"}, reveal: showSecrets,
	}
	first := answerOf(t, view, "", "a <warning>")
	kept := bytes.Clone(first)

	var got map[string]any
	if err := json.Unmarshal(first, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, first)
	}
	if got["message"] != "read <ok> & \"done\"" || got["success"] != true || got["timestamp"] == "" {
		t.Errorf("envelope fields: %v", got)
	}
	data := got["data"].(map[string]any)
	if data["password"] != hostile || data["username"] != "u" || data["apiKey"] != "k" || data["credentialName"] != "live <primary>" {
		t.Errorf("values changed on the way: %q %q %q", data["password"], data["username"], data["credentialName"])
	}
	if w := got["warnings"]; !slices.Equal(toStrings(w), []string{"a <warning>"}) {
		t.Errorf("warnings %v", w)
	}
	if bytes.Contains(first, []byte(`\u003c`)) {
		t.Errorf("HTML escaped: %s", first)
	}
	// The secret fields close the object, in credgate.SecretFields order.
	s := string(first)
	at := func(k string) int { return strings.Index(s, `"`+k+`":`) }
	if !(at("tenant") < at("apiKey") && at("apiKey") < at("username") && at("username") < at("password")) {
		t.Errorf("secret fields out of order: %s", first)
	}

	// The same view encoded by marshal on its own, as a page holds it.
	alone, err := view.MarshalJSON()
	if err != nil || !bytes.Contains(first, append(append([]byte(`"data":`), alone...), ',')) {
		t.Errorf("the view in the envelope is not the view on its own (%v):\n%s\n%s", err, first, alone)
	}

	// A masked view and a page, written after: the first answer is intact.
	hidden := *view
	hidden.reveal = maskSecrets
	page := answerOf(t, []*credentialView{&hidden, view}, "cursor-2")
	if !bytes.Equal(first, kept) {
		t.Fatalf("a later answer changed an earlier one")
	}
	var p struct {
		Data       []map[string]any `json:"data"`
		NextCursor string           `json:"nextCursor"`
		Warnings   any              `json:"warnings"`
	}
	if err := json.Unmarshal(page, &p); err != nil {
		t.Fatalf("page not JSON: %v\n%s", err, page)
	}
	if len(p.Data) != 2 || p.Data[0]["password"] != masked || p.Data[1]["password"] != hostile || p.NextCursor != "cursor-2" || p.Warnings != nil {
		t.Errorf("page: %+v", p)
	}
	if none := answerOf(t, []*credentialView(nil), ""); !bytes.Contains(none, []byte(`"data":null`)) {
		t.Errorf("a nil page: %s", none)
	}
	if plain := answerOf(t, gin.H{"id": "x<y"}, ""); !bytes.Contains(plain, []byte(`"data":{"id":"x<y"}`)) {
		t.Errorf("another value: %s", plain)
	}
}

func toStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
