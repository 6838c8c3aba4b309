package vaultlogin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/singleflight"
)

// Identity is credgate's own Vault identity. It logs in with a LoginMethod,
// renews the token while Vault lets it (Vault's lifetime watcher), and logs
// in again before the token's maximum life ends, when the method's source
// file changes, and when Vault refuses the token (Refused). It never holds a
// caller's token. It is safe for concurrent use.
type Identity struct {
	method LoginMethod
	client *api.Client
	report func(method string, err error)
	now    func() time.Time
	check  time.Duration

	flight singleflight.Group

	mu      sync.Mutex
	auth    *api.SecretAuth // nil until a login succeeds
	expires time.Time       // zero: the token does not expire
	err     error           // why the last login failed; nil after a success
	tried   time.Time       // when the last login was attempted
	fresh   chan struct{}   // closed when a login replaces auth

	// Logins Vault refused in a row (not failures to reach it), what the
	// method's inputs held then, and when the same login may be tried
	// again (refusalBackoff).
	refusals int
	inputs   [32]byte
	nextTry  time.Time
}

// IdentityOptions configures an Identity.
type IdentityOptions struct {
	Method LoginMethod
	// Client is credgate's Vault client (address, TLS); its token is not used.
	Client *api.Client
	// Report, when set, is told about every login and its outcome (for
	// logs and metrics); err never holds a token or secret id.
	Report func(method string, err error)
	// SourceCheck is how often a method's source file is checked for a
	// new token; default 2 s.
	SourceCheck time.Duration
	Now         func() time.Time
}

// errHeld is a login not tried: Vault refused the same one lately.
var errHeld = errors.New("not logging in again with what Vault refused")

// refused reports whether Vault answered a login with a refusal (4xx: a
// wrong or spent secret id, an unknown role, a bad JWT), which counts
// towards its user lockout; an unreachable or failing Vault does not.
func refused(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500
}

// refusalBackoff is how long a login Vault refused n times in a row waits
// before it is tried again with the same inputs: 5 s, 30 s, 2 min, then
// 16 min, so that at most four refusals fall within Vault's default user
// lockout window (5 failures, counter reset after 15 min without one) and
// credgate never locks itself out. A change of the method's input files
// (a new secret id, a new JWT) is tried at once.
func refusalBackoff(n int) time.Duration {
	switch n {
	case 1:
		return 5 * time.Second
	case 2:
		return 30 * time.Second
	case 3:
		return 2 * time.Minute
	}
	return 16*time.Minute + rand.N(time.Minute)
}

// readInputs hashes the files the method reads at a login (a missing file
// hashes as such), so a changed one is noticed.
func (id *Identity) readInputs() [32]byte {
	h := sha256.New()
	if m, ok := id.method.(interface{ Inputs() []string }); ok {
		for _, p := range m.Inputs() {
			b, err := os.ReadFile(p)
			if err != nil {
				h.Write([]byte{0})
			} else {
				h.Write([]byte{1})
				h.Write(b)
				clear(b)
			}
			h.Write([]byte(p))
		}
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// reloginInterval is the least time between logins caused by refusals, so
// a Vault that refuses everything is not asked to log credgate in for
// every request.
const reloginInterval = time.Second

// NewIdentity returns an Identity that has not logged in yet (Login or Run).
func NewIdentity(o IdentityOptions) (*Identity, error) {
	if o.Method == nil || o.Client == nil {
		return nil, errors.New("vaultstore: an identity needs a login method and a client")
	}
	if o.SourceCheck <= 0 {
		o.SourceCheck = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c, err := o.Client.Clone() // Clone copies no token
	if err != nil {
		return nil, err
	}
	c.ClearToken()
	return &Identity{method: o.Method, client: c, report: o.Report, now: o.Now, check: o.SourceCheck,
		err: errors.New("credgate has not logged in to Vault yet"), fresh: make(chan struct{})}, nil
}

// Method names the login method.
func (id *Identity) Method() string { return id.method.Name() }

// Token is credgate's current Vault token; empty before the first login.
func (id *Identity) Token() string {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.auth == nil {
		return ""
	}
	return id.auth.ClientToken
}

// Err says why credgate has no usable Vault identity, or nil when it has
// one: it never logged in, or its token's life has ended. A failed login
// while the token still lives is not an error here (Run keeps trying).
func (id *Identity) Err() error {
	id.mu.Lock()
	defer id.mu.Unlock()
	switch {
	case id.auth == nil:
		return fmt.Errorf("credgate's own Vault login (%s): %w", id.method.Name(), id.err)
	case !id.expires.IsZero() && !id.now().Before(id.expires):
		if id.err != nil {
			return fmt.Errorf("credgate's own Vault token (%s) has expired; logging in again: %w", id.method.Name(), id.err)
		}
		return fmt.Errorf("credgate's own Vault token (%s) has expired", id.method.Name())
	}
	return nil
}

// LastErr is why the last login failed, or nil when it succeeded.
func (id *Identity) LastErr() error {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.err
}

// Login logs in now; concurrent calls share one login.
func (id *Identity) Login(ctx context.Context) error {
	_, err, _ := id.flight.Do("login", func() (any, error) {
		return nil, id.login(context.WithoutCancel(ctx))
	})
	return err
}

func (id *Identity) login(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, LoginTimeout)
	defer cancel()
	start := id.now()
	inputs := id.readInputs()
	id.mu.Lock()
	if id.refusals > 0 && inputs == id.inputs && start.Before(id.nextTry) {
		// Vault refused this very login: asking again would only count
		// towards its lockout. Wait, unless the inputs change.
		err := fmt.Errorf("%w until %s, or until its files change: %w", errHeld, id.nextTry.UTC().Format(time.RFC3339), id.err)
		id.mu.Unlock()
		return err
	}
	id.mu.Unlock()
	auth, err := id.method.Login(ctx, id.client)
	id.mu.Lock()
	id.tried = start
	if err != nil {
		if refused(err) {
			if inputs != id.inputs {
				id.refusals = 0
			}
			id.refusals++
			id.inputs, id.nextTry = inputs, start.Add(refusalBackoff(id.refusals))
		}
		id.err = err
		id.mu.Unlock()
		id.tell(err)
		return err
	}
	id.refusals = 0
	id.auth, id.err = auth, nil
	id.expires = time.Time{}
	if auth.LeaseDuration > 0 {
		id.expires = start.Add(time.Duration(auth.LeaseDuration) * time.Second)
	}
	close(id.fresh)
	id.fresh = make(chan struct{})
	id.mu.Unlock()
	id.tell(nil)
	return nil
}

func (id *Identity) tell(err error) {
	if id.report != nil {
		id.report(id.method.Name(), err)
	}
}

// Refused is told that Vault refused token (403) to one of credgate's own
// calls. Unless another login already replaced that token, it logs in
// again (no sooner than reloginInterval after the last attempt, so a Vault
// that refuses everything is not asked for a login per request) and
// reports whether there is now a different token to repeat the call with.
func (id *Identity) Refused(ctx context.Context, token string) bool {
	if t := id.Token(); t != token && t != "" {
		return true
	}
	if !id.waitRelogin(ctx) {
		return false
	}
	if t := id.Token(); t != token && t != "" {
		return true // a login while we waited
	}
	if err := id.Login(ctx); err != nil {
		return false
	}
	t := id.Token()
	return t != "" && t != token
}

// waitRelogin waits until reloginInterval has passed since the last login
// attempt, and reports whether ctx is still live.
func (id *Identity) waitRelogin(ctx context.Context) bool {
	id.mu.Lock()
	wait := reloginInterval - id.now().Sub(id.tried)
	id.mu.Unlock()
	return wait <= 0 || pause(ctx, wait)
}

// Run keeps credgate logged in until ctx ends: it logs in (with backoff
// while that fails), then renews the token while it is renewable and logs
// in again when the lifetime watcher gives up (the maximum life is near),
// when a non-renewable token has used two thirds of its life, or when the
// method's source file changes.
func (id *Identity) Run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		id.mu.Lock()
		auth, fresh, failed := id.auth, id.fresh, id.err != nil
		id.mu.Unlock()
		if auth == nil || failed {
			if err := id.Login(ctx); err != nil {
				wait := backoff
				if errors.Is(err, errHeld) {
					// Held after a refusal: look for new inputs often (no
					// Vault call is made until they change or it is time).
					wait = id.check
				} else {
					backoff = min(2*backoff, 10*time.Second)
				}
				if !pause(ctx, wait) {
					return
				}
				continue
			}
			backoff = time.Second
			continue
		}
		if id.watch(ctx, auth, fresh) {
			// A token at the end of its life whose source has nothing newer
			// yet logs in again at most once per reloginInterval.
			if !id.waitRelogin(ctx) {
				return
			}
			if err := id.Login(ctx); err != nil && !pause(ctx, backoff) {
				return
			}
		}
	}
}

// watch waits until auth needs replacing and reports whether Run should
// log in; it reports false when ctx ends or another login replaced auth.
func (id *Identity) watch(ctx context.Context, auth *api.SecretAuth, fresh <-chan struct{}) bool {
	var due <-chan error
	var renewed <-chan *api.RenewOutput
	switch lease := time.Duration(auth.LeaseDuration) * time.Second; {
	case auth.Renewable && lease > 0:
		w, err := id.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: &api.Secret{Auth: auth}})
		if err != nil {
			return true
		}
		go w.Start()
		defer w.Stop()
		due, renewed = w.DoneCh(), w.RenewCh()
	case lease > 0:
		ch := make(chan error, 1)
		t := time.AfterFunc(lease*2/3, func() { ch <- nil })
		defer t.Stop()
		due = ch
	}
	var tick <-chan time.Time
	var src string
	var seen []byte
	if m, ok := id.method.(interface{ Source() string }); ok {
		src = m.Source()
		seen, _ = os.ReadFile(src)
		t := time.NewTicker(id.check)
		defer t.Stop()
		tick = t.C
		defer func() { clear(seen) }()
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-fresh:
			return false
		case <-due:
			return true
		case r := <-renewed:
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				id.mu.Lock()
				if id.auth == auth {
					id.expires = r.RenewedAt.Add(time.Duration(r.Secret.Auth.LeaseDuration) * time.Second)
				}
				id.mu.Unlock()
			}
		case <-tick:
			if now, err := os.ReadFile(src); err == nil && !bytes.Equal(now, seen) {
				clear(now)
				return true
			}
		}
	}
}

// LoginTimeout bounds one login.
const LoginTimeout = 5 * time.Second

// pause waits d or until ctx ends, and reports whether ctx is still live.
func pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return ctx.Err() == nil
	}
}
