package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// readyz answers at once from the latest probe of every check; it names
// failing checks but not their causes, which go to the log (the endpoint
// is unauthenticated). A probe runs when the last one is older than
// probeEvery or found a check failing, and readyz waits for it at most answerWithin: a balancer's
// short probe timeout never fails on a Vault that is slow but working.
// "slow" is a working check that took longer than slowAfter (or is still
// running); a check is down only when it failed: an error answer, or no
// answer within its own timeout (the store's bound on a Vault call).
func readyz(checks []ReadyCheck, log *zap.Logger) gin.HandlerFunc {
	r := &readiness{checks: checks, log: log}
	return func(c *gin.Context) {
		states, ok := r.now(c.Request.Context())
		results := gin.H{}
		for i, chk := range checks {
			results[chk.Name] = states[i]
		}
		if !ok {
			c.Header("Retry-After", retryAfterBackend)
			writeJSON(c, http.StatusServiceUnavailable, gin.H{"status": "unavailable", "checks": results})
			return
		}
		writeJSON(c, http.StatusOK, gin.H{"status": "ready", "checks": results})
	}
}

// Timing of readyz.
const (
	probeEvery   = 2 * time.Second
	answerWithin = 1500 * time.Millisecond
	slowAfter    = time.Second
	probeLimit   = 15 * time.Second // a check's own bound, beside its timeouts
)

// readiness keeps the latest probe of the checks.
type readiness struct {
	checks []ReadyCheck
	log    *zap.Logger

	mu      sync.Mutex
	at      time.Time // when the latest probe ended; zero: none yet
	states  []string  // ok, slow or unavailable, per check
	probing chan struct{}
}

// now returns the state of each check and whether all are working,
// probing again when the latest probe is old.
func (r *readiness) now(ctx context.Context) ([]string, bool) {
	r.mu.Lock()
	if (time.Since(r.at) >= probeEvery || slices.Contains(r.states, "unavailable")) && r.probing == nil {
		// Old, or failing: a recovery shows at the next call.
		r.probing = make(chan struct{})
		go r.probe(r.probing)
	}
	wait := r.probing
	r.mu.Unlock()
	if wait != nil {
		t := time.NewTimer(answerWithin)
		select {
		case <-wait:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.checks))
	ok := !r.at.IsZero()
	for i, chk := range r.checks {
		switch {
		case chk.Instant:
			out[i] = "ok"
			if err := chk.Check(ctx); err != nil {
				out[i], ok = "unavailable", false
			}
		case r.at.IsZero():
			out[i] = "unavailable" // no probe has ended yet
		case r.states[i] == "unavailable":
			out[i], ok = "unavailable", false
		case r.probing != nil && time.Since(r.at) > probeEvery+answerWithin:
			out[i] = "slow" // working when last seen, and a probe is still on
		default:
			out[i] = r.states[i]
		}
	}
	return out, ok
}

// probe runs every check, in parallel, and records what each said.
func (r *readiness) probe(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), probeLimit)
	defer cancel()
	states := make([]string, len(r.checks))
	var wg sync.WaitGroup
	for i, chk := range r.checks {
		if chk.Instant {
			continue
		}
		wg.Go(func() {
			start := time.Now()
			if err := chk.Check(ctx); err != nil {
				states[i] = "unavailable"
				r.log.Warn("not ready", zap.String("check", chk.Name), zap.Error(err))
				return
			}
			states[i] = "ok"
			if time.Since(start) > slowAfter {
				states[i] = "slow"
			}
		})
	}
	wg.Wait()
	r.mu.Lock()
	r.at, r.states, r.probing = time.Now(), states, nil
	r.mu.Unlock()
	close(done)
}

type debugAuthResponse struct {
	Subject       string          `json:"subject"`
	Name          string          `json:"name"`
	Email         string          `json:"email"`
	Issuer        string          `json:"issuer"`
	Tenant        string          `json:"tenant"`
	Roles         []string        `json:"roles"`
	Groups        []string        `json:"groups,omitempty"`
	VaultPolicies []string        `json:"vault_policies"`
	ExpiresAt     time.Time       `json:"expires_at"`
	Claims        json.RawMessage `json:"claims"`
	// Grants are the grants in force for the caller, each with the Vault
	// policy it renders (its name and text).
	Grants []debugGrant `json:"grants"`
}

type debugGrant struct {
	credgate.Grant
	VaultPolicy     string `json:"vault_policy"`
	VaultPolicyText string `json:"vault_policy_text"`
}

// debugAuth shows what credgate made of the caller's token; never the
// token.
func (h *handlers) debugAuth(c *gin.Context) {
	p := credgate.PrincipalFrom(c.Request.Context())
	out := debugAuthResponse{
		Subject: p.Subject, Name: p.Name, Email: p.Email, Issuer: p.Issuer, Tenant: p.Tenant,
		Roles: p.Roles, Groups: p.Groups, VaultPolicies: policy.Names(p.Tenant, p.Roles), ExpiresAt: p.Expiry.UTC(),
		Grants: []debugGrant{},
	}
	token, _ := bearerToken(c)
	out.Claims, _ = h.auth.Claims(token) // the token authenticate verified
	var texts map[string]string
	if h.grants != nil {
		texts = h.grants.GrantPolicies(p)
	}
	for _, g := range p.Grants {
		name := policy.GrantPolicyName(p.Tenant, g.ID)
		out.VaultPolicies = append(out.VaultPolicies, name)
		out.Grants = append(out.Grants, debugGrant{Grant: g, VaultPolicy: name, VaultPolicyText: texts[name]})
	}
	writeJSON(c, http.StatusOK, out)
}
