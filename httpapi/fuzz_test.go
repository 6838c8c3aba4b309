package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/httpapi"
)

// The fuzz targets drive the whole router and middleware with garbage:
// request lines, ids, cursors, If-Match values and bodies of both families.
// Behind the handlers sits fuzzStore, an in-memory stand-in that applies
// the root package's rules (Validate, CheckVersion) to one service and one
// credential, so that fuzzing needs no Vault and runs fast. What must hold:
// no panic, no 5xx, and the store is only ever handed ids that are safe as
// Vault path segments.

type fuzzStore struct {
	t   *testing.T
	svc credgate.Service
	cr  credgate.Credential
}

func newFuzzStore() *fuzzStore {
	now := time.Unix(1_800_000_000, 0).UTC()
	return &fuzzStore{
		svc: credgate.Service{ID: "svc", Name: "Svc", Status: credgate.StatusActive, Metadata: map[string]any{}, TenantID: "acme", CreatedAt: now, UpdatedAt: now, Version: 3},
		cr: credgate.Credential{ID: "cred-3993f31c-802f-4acf-8ae0-a4180aa7ba24", IntegrationID: "svc", CredentialName: "live", AuthType: credgate.AuthAPIKey,
			Status: credgate.CredActive, Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now, Version: 2, Secrets: credgate.Secrets{"apiKey": "k"}},
	}
}

// ids fails the run when a handler hands the store an id that is not a
// safe path segment.
func (s *fuzzStore) ids(service, cred string) {
	if service != "" && !credgate.ValidID(service) {
		s.t.Fatalf("the store was handed the service id %q", service)
	}
	if c, ok := credgate.CanonicalCredentialID(cred); cred != "" && (!ok || c != cred) {
		s.t.Fatalf("the store was handed the credential id %q", cred)
	}
}

func (s *fuzzStore) service(id string) (credgate.Service, error) {
	s.ids(id, "")
	if id != s.svc.ID {
		return credgate.Service{}, credgate.Errorf(credgate.EServiceNotFound, "service not found")
	}
	out := s.svc
	out.Metadata = map[string]any{}
	return out, nil
}

func (s *fuzzStore) credential(service, id string) (credgate.Credential, error) {
	s.ids(service, id)
	if (id != "" && id != s.cr.ID) || (service != "" && service != s.cr.IntegrationID) {
		return credgate.Credential{}, credgate.Errorf(credgate.ECredentialNotFound, "credential not found")
	}
	out := s.cr
	out.Secrets, out.Metadata = s.cr.Secrets.Clone(), map[string]any{}
	return out, nil
}

func (s *fuzzStore) GetService(_ context.Context, id string) (*credgate.Service, error) {
	svc, err := s.service(id)
	return &svc, err
}

func (s *fuzzStore) ListServices(_ context.Context, f credgate.ServiceFilter) (*credgate.ServicePage, error) {
	s.ids(f.After, "")
	return &credgate.ServicePage{Services: []*credgate.Service{&s.svc}}, nil
}

func (s *fuzzStore) CreateService(_ context.Context, svc *credgate.Service) (*credgate.Service, error) {
	s.ids(svc.ID, "")
	if err := svc.Validate(); err != nil {
		return nil, err
	}
	svc.Version = 1
	return svc, nil
}

func (s *fuzzStore) UpdateService(_ context.Context, id string, ifMatch int, fn func(*credgate.Service) error, creds *credgate.PrimaryUpdate) (*credgate.Service, error) {
	svc, err := s.service(id)
	if err != nil {
		return nil, err
	}
	if err := fn(&svc); err != nil {
		return nil, err
	}
	if err := svc.Validate(); err != nil {
		return nil, err
	}
	if creds != nil {
		if _, _, err := s.SetPrimaryCredential(context.Background(), id, 0, *creds); err != nil {
			return nil, err
		}
	}
	if err := credgate.CheckVersion(svc.Version, ifMatch); err != nil {
		return nil, err
	}
	svc.Version++
	return &svc, nil
}

func (s *fuzzStore) DeleteService(_ context.Context, id string, ifMatch int) error {
	svc, err := s.service(id)
	if err != nil {
		return err
	}
	return credgate.CheckVersion(svc.Version, ifMatch)
}

func (s *fuzzStore) CreateCredential(_ context.Context, c *credgate.Credential) (*credgate.Credential, error) {
	s.ids(c.IntegrationID, "")
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.ID, c.Version = s.cr.ID, 1
	return c, nil
}

func (s *fuzzStore) LocateCredential(_ context.Context, cred string) (string, error) {
	c, err := s.credential("", cred)
	return c.IntegrationID, err
}

func (s *fuzzStore) GetCredential(_ context.Context, r credgate.CredentialRead) (*credgate.Credential, error) {
	c, err := s.credential(r.Service, r.ID)
	if err != nil {
		return nil, err
	}
	if r.Version > c.Version {
		return nil, credgate.Errorf(credgate.ECredentialNotFound, "no such version")
	}
	return &c, nil
}

func (s *fuzzStore) ListCredentials(_ context.Context, f credgate.CredentialFilter) (*credgate.CredentialPage, error) {
	if fe := f.Check(); len(fe) > 0 {
		return nil, fe.Err()
	}
	c, err := s.credential(f.IntegrationID, "")
	if err != nil {
		return nil, err
	}
	c.Secrets = nil
	return &credgate.CredentialPage{Credentials: []*credgate.Credential{&c}}, nil
}

func (s *fuzzStore) UpdateCredential(_ context.Context, cred string, ifMatch int, fn func(*credgate.Credential) error) (*credgate.Credential, error) {
	c, err := s.credential("", cred)
	if err != nil {
		return nil, err
	}
	if err := fn(&c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := credgate.CheckVersion(c.Version, ifMatch); err != nil {
		return nil, err
	}
	c.Version++
	return &c, nil
}

func (s *fuzzStore) DeleteCredential(_ context.Context, cred string, ifMatch int) (string, error) {
	c, err := s.credential("", cred)
	if err != nil {
		return "", err
	}
	return c.IntegrationID, credgate.CheckVersion(c.Version, ifMatch)
}

func (s *fuzzStore) CredentialVersions(_ context.Context, cred string) ([]credgate.CredentialVersion, error) {
	c, err := s.credential("", cred)
	if err != nil {
		return nil, err
	}
	return []credgate.CredentialVersion{{Version: c.Version, CreatedAt: c.CreatedAt, Change: credgate.ChangeCreated, Current: true}}, nil
}

func (s *fuzzStore) SetPrimaryCredential(_ context.Context, service string, ifMatch int, u credgate.PrimaryUpdate) (*credgate.Credential, string, error) {
	c, err := s.credential(service, "")
	if err != nil {
		return nil, "", err
	}
	if u.CredentialID != "" {
		s.ids("", u.CredentialID)
	}
	u.Apply(&c)
	if err := c.Validate(); err != nil {
		return nil, "", err
	}
	if err := credgate.CheckVersion(c.Version, ifMatch); err != nil {
		return nil, "", err
	}
	return &c, credgate.EventRotated, nil
}

func (s *fuzzStore) DescribePrimary(_ context.Context, service string) (*credgate.Credential, error) {
	c, err := s.credential(service, "")
	c.Secrets = nil
	return &c, err
}

func (s *fuzzStore) RotateCredential(ctx context.Context, cred string, ifMatch int, fn func(*credgate.Credential) error, _ bool) (*credgate.Credential, error) {
	return s.UpdateCredential(ctx, cred, ifMatch, fn)
}

func (s *fuzzStore) RefreshCredential(ctx context.Context, cred string, ifMatch int, grant credgate.RefreshGrant) (*credgate.Credential, error) {
	return s.UpdateCredential(ctx, cred, ifMatch, func(c *credgate.Credential) error {
		_, _, err := grant(ctx, c)
		return err
	})
}

func (s *fuzzStore) RandomSecret(context.Context) (string, error) { return "generated", nil }

type fuzzAuth struct{}

func (fuzzAuth) Verify(_ context.Context, token, _ string) (*credgate.Principal, error) {
	if token != "good" {
		return nil, credgate.Errorf(credgate.EUnauthorized, "token is invalid")
	}
	return &credgate.Principal{Subject: "fuzz", Tenant: "acme", TenantName: "Acme", Roles: []string{"integration_admin"}, Expiry: time.Now().Add(time.Hour)}, nil
}

func (fuzzAuth) Claims(string) (json.RawMessage, error) {
	return json.RawMessage(`{"sub":"fuzz"}`), nil
}

// fuzzEndpoints refuses every endpoint without asking DNS.
type fuzzEndpoints struct{}

func (fuzzEndpoints) CheckURL(context.Context, string) (string, error) {
	return "", errors.New("names nothing credgate calls while fuzzing")
}

// fuzzHandler builds the handler once per target; each input tells the
// store which test it serves (inputs run one at a time in a process).
func fuzzHandler(f *testing.F) (http.Handler, func(*testing.T)) {
	st := newFuzzStore()
	h, err := httpapi.New(httpapi.Options{
		Services: st, Credentials: st, Primary: st, Rotator: st, Locator: st, Auth: fuzzAuth{}, Logger: nopLogger(),
		Endpoints: fuzzEndpoints{},
		Refresh: func(context.Context, *credgate.Credential) (credgate.Secrets, *time.Time, error) {
			return nil, nil, &credgate.Error{Code: credgate.EUpstreamError, Message: "refused", UpstreamError: "invalid_grant"}
		},
		RateLimit: httpapi.RateLimit{Default: 1 << 30},
	})
	if err != nil {
		f.Fatal(err)
	}
	return h, func(t *testing.T) { st.t = t }
}

// serve sends one request; a request Go cannot even build is skipped.
func serve(t *testing.T, h http.Handler, method, target, body string, header ...string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://credgate.test"+target, strings.NewReader(body))
	if err != nil || req.URL.Host != "credgate.test" {
		return
	}
	req.Header.Set("Authorization", "Bearer good")
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header[header[i]] = []string{header[i+1]}
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	// A refused refresh is the token endpoint's 502, not a failure here.
	if rec.Code >= 500 && !strings.Contains(rec.Body.String(), `"UPSTREAM_ERROR"`) {
		t.Fatalf("%s %s %q: %d %s", method, target, body, rec.Code, rec.Body.String())
	}
}

func FuzzServiceBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"Stripe","base_url":"https://api.stripe.com","metadata":{"team":"x"}}`,
		`{"name":"x","credentials":{"api_key":"k","environment":"prod"}}`,
		`{"credentials":{"api_key":"k"},"metadata":{"expires_at":null},"service_id":"svc","credential_id":"3993f31c-802f-4acf-8ae0-a4180aa7ba24"}`,
		`{"metadata":{"a":{"b":{"c":[1,{"d":null}]}}},"status":"inactive","id":"svc"}`,
		`{"name":5,"base_url":"ftp://x","credentials":["a"]}`,
		`{"name":"x"} {"name":"y"}`, `[]`, `null`, ``,
	} {
		f.Add(s)
	}
	h, use := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body string) {
		use(t)
		serve(t, h, "POST", "/api/v1/services", body)
		serve(t, h, "PUT", "/api/v1/services/svc", body, "If-Match", `"3"`)
		serve(t, h, "PATCH", "/api/v1/services/svc", body)
		serve(t, h, "PUT", "/api/v1/services/svc/credentials", body)
	})
}

func FuzzCredentialBody(f *testing.F) {
	for _, s := range []string{
		`{"integrationId":"svc","credentialName":"n","authType":"api_key","apiKey":"k","expiresAt":"2030-01-01T00:00:00Z"}`,
		`{"integrationId":"svc","credentialName":"n","authType":"oauth2_bearer","accessToken":"a","refreshToken":"r","tokenEndpoint":"https://10.0.0.1/t","scopes":["a"]}`,
		`{"description":"d","apiKey":null,"customFields":{"region":"eu","gone":null},"metadata":null}`,
		`{"generate":true}`, `{"generate":true,"apiKey":"x"}`, `{"apiKey":"********"}`,
		`{"status":"revoked","version":9,"tenant":{"id":"x"},"id":"cred-x"}`,
		`{"authType":"custom","customFields":{"a b":"x"}}`, `{"expiresAt":"tomorrow","scopes":"a"}`, ``,
	} {
		f.Add(s)
	}
	const id = "/api/v1/credentials/cred-3993f31c-802f-4acf-8ae0-a4180aa7ba24"
	h, use := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body string) {
		use(t)
		serve(t, h, "POST", "/api/v1/credentials", body)
		serve(t, h, "PATCH", id, body, "If-Match", `"2"`)
		serve(t, h, "POST", id+"/rotate", body)
	})
}

// FuzzRequestLine fuzzes what is not a body: the method, the path and its
// ids, the query (cursors, limits, credentialId, version) and If-Match.
func FuzzRequestLine(f *testing.F) {
	for _, s := range []struct{ method, path, query, ifMatch string }{
		{"GET", "/api/v1/services", "limit=2&cursor=YWZ0ZXI6c3Zj&type=x&status=active", ""},
		{"GET", "/api/v1/services/svc%2F..%2Fx", "", ""},
		{"PUT", "/api/v1/services/svc", "", `W/"3"`},
		{"DELETE", "/api/v1/services/svc", "", `"abc"`},
		{"GET", "/api/v1/credentials/svc", "credentialId=3993F31C-802F-4ACF-8AE0-A4180AA7BA24&version=1", ""},
		{"GET", "/api/v1/credentials", "integrationId=svc&cursor=%zz", ""},
		{"DELETE", "/api/v1/credentials/cred-../../x", "", `"2"`},
		{"POST", "/api/v1/credentials/3993f31c-802f-4acf-8ae0-a4180aa7ba24/rotate", "", `"-1"`},
		{"GET", "/api/v1/services/svc/credentials/versions", "", ""},
		{"OPTIONS", "/api/v1/services/svc", "", ""},
	} {
		f.Add(s.method, s.path, s.query, s.ifMatch)
	}
	h, use := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, method, path, query, ifMatch string) {
		use(t)
		target := path
		if query != "" {
			target += "?" + query
		}
		if !strings.HasPrefix(target, "/") {
			return
		}
		serve(t, h, method, target, `{"description":"x"}`, "If-Match", ifMatch)
	})
}
