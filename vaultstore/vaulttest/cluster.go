package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate/vaultstore/devvault"
)

// Cluster is a highly available Vault: nodes of bin/vault with integrated
// storage (Raft) on loopback, each with its own data directory, initialized
// with one unseal key, unsealed and joined to the first. It is what
// platform teams run, for failover tests.
type Cluster struct {
	Nodes     []*Node
	RootToken string
	UnsealKey string

	bin string
}

// Node is one server of a Cluster.
type Node struct {
	ID   string
	Addr string // api_addr: http://127.0.0.1:port
	dir  string
	conf string

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *devvault.Buffer
	done chan struct{}
}

// StartCluster starts an n-node cluster for tb and stops it when tb ends.
// It fails the test when no vault binary is there (run `make vault`).
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	wd, _ := os.Getwd()
	bin := devvault.FindBinary(wd)
	if bin == "" {
		tb.Fatal("vaulttest: a cluster needs bin/vault: run `make vault`")
	}
	c := &Cluster{bin: bin}
	tb.Cleanup(c.Close)
	dir := tb.TempDir()
	ports := map[int]bool{}
	free := func() int { // distinct: a port just probed can be handed out again
		for {
			p, err := devvault.FreePort()
			if err != nil {
				tb.Fatal(err)
			}
			if !ports[p] {
				ports[p] = true
				return p
			}
		}
	}
	for i := range n {
		port, cport := free(), free()
		nd := &Node{ID: fmt.Sprintf("node%d", i+1), Addr: fmt.Sprintf("http://127.0.0.1:%d", port), dir: filepath.Join(dir, fmt.Sprintf("node%d", i+1))}
		if err := os.MkdirAll(filepath.Join(nd.dir, "raft"), 0o700); err != nil {
			tb.Fatal(err)
		}
		nd.conf = filepath.Join(nd.dir, "vault.hcl")
		// performance_multiplier 1: Raft's production timing (elections in
		// a second or two) rather than the relaxed default of 5.
		hcl := fmt.Sprintf(`storage "raft" {
  path = %q
  node_id = %q
  performance_multiplier = 1
}
listener "tcp" {
  address = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable = true
}
api_addr = %q
cluster_addr = "https://127.0.0.1:%d"
disable_mlock = true
`, filepath.Join(nd.dir, "raft"), nd.ID, port, cport, nd.Addr, cport)
		if err := os.WriteFile(nd.conf, []byte(hcl), 0o600); err != nil {
			tb.Fatal(err)
		}
		c.Nodes = append(c.Nodes, nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.form(ctx); err != nil {
		tb.Fatalf("vaulttest: forming a %d-node cluster: %v\n%s", n, err, c.Logs())
	}
	return c
}

// form starts every node, initializes the first, and joins the others.
func (c *Cluster) form(ctx context.Context) error {
	for _, nd := range c.Nodes {
		if err := c.start(nd); err != nil {
			return err
		}
	}
	first := c.Nodes[0]
	anon := first.client("")
	if err := waitUntil(ctx, func() error { _, err := anon.Sys().InitStatusWithContext(ctx); return err }); err != nil {
		return err
	}
	// Init waits for the first node to elect itself (a heartbeat timeout,
	// longer on a busy machine) and cannot be retried (a second init finds
	// the node initialized and the root token lost), so it gets the whole
	// deadline, not the client's 2 s.
	anon.SetClientTimeout(time.Until(deadlineOf(ctx)))
	init, err := anon.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	c.RootToken, c.UnsealKey = init.RootToken, init.Keys[0]
	if err := c.unseal(ctx, first); err != nil {
		return err
	}
	if err := waitUntil(ctx, func() error { return activeErr(ctx, first.client(c.RootToken)) }); err != nil {
		return fmt.Errorf("%s never became active: %w", first.ID, err)
	}
	// Autopilot makes a joined node a voter once it has been stable this
	// long (10 s by default); a second is enough on loopback.
	if _, err := first.client(c.RootToken).Logical().WriteWithContext(ctx, "sys/storage/raft/autopilot/configuration",
		map[string]any{"server_stabilization_time": "1s", "cleanup_dead_servers": false}); err != nil {
		return fmt.Errorf("autopilot: %w", err)
	}
	for _, nd := range c.Nodes[1:] {
		err := waitUntil(ctx, func() error {
			res, err := nd.client("").Sys().RaftJoinWithContext(ctx, &api.RaftJoinRequest{LeaderAPIAddr: first.Addr})
			if err == nil && !res.Joined {
				err = errors.New("not joined")
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("%s joining: %w", nd.ID, err)
		}
		if err := c.unseal(ctx, nd); err != nil {
			return err
		}
	}
	// Every node a voter, as autopilot makes them once they are stable.
	return waitUntil(ctx, func() error {
		conf, err := first.client(c.RootToken).Logical().ReadWithContext(ctx, "sys/storage/raft/configuration")
		if err != nil {
			return err
		}
		cfg, _ := conf.Data["config"].(map[string]any)
		servers, _ := cfg["servers"].([]any)
		voters := 0
		for _, s := range servers {
			if m, _ := s.(map[string]any); m["voter"] == true {
				voters++
			}
		}
		if voters != len(c.Nodes) {
			return fmt.Errorf("%d of %d nodes are voters", voters, len(c.Nodes))
		}
		return nil
	})
}

func (c *Cluster) start(nd *Node) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	nd.logs, nd.done = &devvault.Buffer{}, make(chan struct{})
	nd.cmd = exec.Command(c.bin, "server", "-config="+nd.conf)
	nd.cmd.Env = append(os.Environ(), "VAULT_ADDR=", "VAULT_TOKEN=", "SKIP_SETCAP=1")
	nd.cmd.Stdout, nd.cmd.Stderr = nd.logs, nd.logs
	nd.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := nd.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", nd.ID, err)
	}
	done := nd.done
	cmd := nd.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	return nil
}

func (c *Cluster) unseal(ctx context.Context, nd *Node) error {
	return waitUntil(ctx, func() error {
		st, err := nd.client("").Sys().UnsealWithContext(ctx, c.UnsealKey)
		if err == nil && st.Sealed {
			err = errors.New("still sealed")
		}
		return err
	})
}

// Client returns a root client of node i.
func (c *Cluster) Client(i int) *api.Client { return c.Nodes[i].client(c.RootToken) }

// Active returns the index of the active node, or -1 when none is.
func (c *Cluster) Active(ctx context.Context) int {
	for i, nd := range c.Nodes {
		if activeErr(ctx, nd.client(c.RootToken)) == nil {
			return i
		}
	}
	return -1
}

// WaitActive waits until a node is active and returns it.
func (c *Cluster) WaitActive(ctx context.Context) (int, error) {
	for {
		if i := c.Active(ctx); i >= 0 {
			return i, nil
		}
		select {
		case <-ctx.Done():
			return -1, errors.New("no node became active")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Kill stops node i at once (SIGKILL): a crash, not a shutdown.
func (c *Cluster) Kill(i int) {
	nd := c.Nodes[i]
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts a killed node i again from its data and unseals it; it
// rejoins the cluster as a standby.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if err := c.start(c.Nodes[i]); err != nil {
		return err
	}
	return c.unseal(ctx, c.Nodes[i])
}

// Logs returns what every node printed.
func (c *Cluster) Logs() string {
	var out string
	for _, nd := range c.Nodes {
		if nd.logs != nil {
			out += "--- " + nd.ID + "\n" + nd.logs.String()
		}
	}
	return out
}

// Close stops every node.
func (c *Cluster) Close() {
	for _, nd := range c.Nodes {
		nd.mu.Lock()
		cmd, done := nd.cmd, nd.done
		nd.mu.Unlock()
		if cmd == nil {
			continue
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
}

func (nd *Node) client(token string) *api.Client {
	cfg := api.DefaultConfig()
	cfg.Address = nd.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 2 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		panic(err) // only a malformed address fails, and ours are not
	}
	c.SetToken(token) // "" clears a VAULT_TOKEN the environment gave
	return c
}

// activeErr is nil when the node c talks to is unsealed and active.
func activeErr(ctx context.Context, c *api.Client) error {
	h, err := c.Sys().HealthWithContext(ctx)
	switch {
	case err != nil:
		return err
	case !h.Initialized || h.Sealed || h.Standby:
		return errors.New("not active")
	}
	return nil
}

func waitUntil(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Balancer is a small health-checking load balancer in front of a
// Cluster, as platform teams put one in front of Vault: every 200 ms it
// asks each node's sys/health and sends requests only to the active node
// (the check HashiCorp documents for load balancers). With no active node
// it answers 503 itself, as a balancer with no healthy backend does.
type Balancer struct {
	URL string

	c       *Cluster
	srv     *httptest.Server
	proxies []*httputil.ReverseProxy // one per node
	active  atomic.Int32             // index of the node to send to; -1: none
	stop    chan struct{}
	done    chan struct{}
}

// Balancer starts a Balancer for tb over c and stops it when tb ends.
func (c *Cluster) Balancer(tb testing.TB) *Balancer {
	tb.Helper()
	b := &Balancer{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	for _, nd := range c.Nodes {
		u, err := url.Parse(nd.Addr)
		if err != nil {
			tb.Fatal(err)
		}
		p := httputil.NewSingleHostReverseProxy(u)
		p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, `{"errors":["no healthy backend"]}`, http.StatusBadGateway)
		}
		b.proxies = append(b.proxies, p)
	}
	b.check()
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One read of the choice: the health check may change it meanwhile.
		i := b.active.Load()
		if i < 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"errors":["no healthy backend"]}`))
			return
		}
		b.proxies[i].ServeHTTP(w, r)
	}))
	b.URL = b.srv.URL
	go b.run()
	tb.Cleanup(b.Close)
	return b
}

func (b *Balancer) run() {
	defer close(b.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.check()
		}
	}
}

// check points the balancer at the node whose sys/health answers 200 (an
// active node), or at nothing.
func (b *Balancer) check() {
	hc := &http.Client{Timeout: 150 * time.Millisecond}
	for i, nd := range b.c.Nodes {
		r, err := hc.Get(nd.Addr + "/v1/sys/health")
		if err != nil {
			continue
		}
		r.Body.Close()
		if r.StatusCode == http.StatusOK {
			b.active.Store(int32(i))
			return
		}
	}
	b.active.Store(-1)
}

// Close stops the balancer.
func (b *Balancer) Close() {
	select {
	case <-b.stop:
		return
	default:
	}
	close(b.stop)
	<-b.done
	b.srv.Close()
}

// deadlineOf is ctx's deadline, or a minute from now.
func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Minute)
}
