package credgate

import (
	"testing"
	"time"
)

func TestWebhookRules(t *testing.T) {
	for _, tc := range []struct {
		w    Webhook
		bad  string
		want bool
	}{
		{Webhook{URL: "https://hooks.example.com/x", EventTypes: []string{EventExpiring}}, "", true},
		{Webhook{URL: "http://hooks.example.com/x", EventTypes: []string{EventExpiring}}, "url", false},
		{Webhook{URL: "https://hooks.example.com/x"}, "eventTypes", false},
		{Webhook{URL: "https://hooks.example.com/x", EventTypes: []string{EventExpiring, EventExpiring}}, "eventTypes", false},
		{Webhook{URL: "https://u:p@hooks.example.com/x", EventTypes: []string{EventCreated}}, "url", false},
	} {
		err := tc.w.Validate()
		if (err == nil) != tc.want || (tc.bad != "" && FieldsOf(err)[tc.bad] == "") {
			t.Errorf("%+v: %v", tc.w, err)
		}
	}
	if id := NewWebhookID(); !ValidWebhookID(id) {
		t.Fatalf("%s is refused", id)
	}
	for _, id := range []string{"wh_", "wh_cred-0b1d6a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "wh_0B1D6A7E-1C2D-4E5F-8A9B-0C1D2E3F4A5B", "0b1d6a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "wh_0b1d6a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5"} {
		if ValidWebhookID(id) {
			t.Errorf("%q is accepted", id)
		}
	}
	created := time.Now()
	w := Webhook{Enabled: true, EventTypes: []string{EventExpiring}, CreatedAt: created}
	if !w.Wants(&Event{Type: EventExpiring, Timestamp: created}) || w.Wants(&Event{Type: EventCreated, Timestamp: created}) ||
		w.Wants(&Event{Type: EventExpiring, Timestamp: created.Add(-time.Second)}) {
		t.Fatal("Wants: type or time not respected")
	}
}

// FieldsOf returns the fields a VALIDATION_FAILED names, or nil.
func FieldsOf(err error) FieldErrors {
	if e, ok := err.(*Error); ok {
		return e.Fields
	}
	return nil
}
