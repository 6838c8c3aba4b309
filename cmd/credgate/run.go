package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/client"
)

// runCmd is credgate run: it fetches services' credentials and starts a
// command with them in its environment, as seed 000's client puts them:
// SERVICE_<SERVICE ID>_<KEY> (upper case; what is not a letter, digit or _
// becomes _). Signals go to the command; credgate run exits with its code.
// Nothing is written to disk and no value is on a command line. With
// -watch, the credentials are polled (their version) and the command is
// restarted (SIGTERM, then SIGKILL after -grace) with the new ones.
//
// The server is CREDGATE_ADDR (or -addr), the token CREDGATE_TOKEN or the
// file CREDGATE_TOKEN_FILE names (read again when it changes); neither
// reaches the command's environment.
func runCmd(ctx context.Context, args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", getenv("CREDGATE_ADDR"), "credgate's address (default $CREDGATE_ADDR)")
	var services []string
	fs.Func("service", "a service whose credentials the command gets (repeat for more)", func(s string) error {
		services = append(services, s)
		return nil
	})
	prefix := fs.String("prefix", "SERVICE_", "what each variable's name starts with, before the service id")
	credential := fs.String("credential", "", "with one -service: that credential of it (its id), not the one the service serves")
	watch := fs.Duration("watch", 0, "poll the credentials this often and restart the command when one changes (0: never)")
	grace := fs.Duration("grace", 10*time.Second, "how long a restarted command gets between SIGTERM and SIGKILL")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: credgate run -service ID [-service ID ...] [-credential ID] [-prefix SERVICE_] [-watch 30s] -- COMMAND [ARGS...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cmdline := fs.Args()
	if len(services) == 0 || len(cmdline) == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	if *watch != 0 && *watch < time.Second {
		return errors.New("credgate run: -watch is at least 1s")
	}
	if *credential != "" && len(services) != 1 {
		return errors.New("credgate run: -credential goes with exactly one -service")
	}
	c, err := cliClient(*addr, getenv)
	if err != nil {
		return fmt.Errorf("credgate run: %w", err)
	}
	fetch := func() ([]string, map[string]int, error) {
		if *credential != "" {
			return fetchCredentialEnv(ctx, c, services[0], *credential, *prefix)
		}
		return fetchEnv(ctx, c, services, *prefix)
	}
	env, versions, err := fetch()
	if err != nil {
		return fmt.Errorf("credgate run: %w; the command was not started", err)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	base := childEnv(environ)
	var tick <-chan time.Time
	if *watch > 0 {
		t := time.NewTicker(*watch)
		defer t.Stop()
		tick = t.C
	}
	for {
		child := exec.Command(cmdline[0], cmdline[1:]...)
		child.Env = append(slices.Clone(base), env...)
		child.Stdin, child.Stdout, child.Stderr = os.Stdin, stdout, stderr
		if err := child.Start(); err != nil {
			return fmt.Errorf("credgate run: %w", err)
		}
		done := make(chan error, 1)
		go func() { done <- child.Wait() }()
		restart := false
	wait:
		for {
			select {
			case err := <-done:
				return exitOf(err)
			case s := <-sigs:
				_ = child.Process.Signal(s)
			case <-tick:
				newEnv, newVersions, err := fetch()
				if err != nil {
					fmt.Fprintf(stderr, "credgate run: polling the credentials failed (the command keeps running): %v\n", err)
					continue
				}
				if !maps2Equal(versions, newVersions) {
					env, versions, restart = newEnv, newVersions, true
					fmt.Fprintln(stderr, "credgate run: the credentials changed; restarting the command")
					_ = child.Process.Signal(syscall.SIGTERM)
					select {
					case <-done:
					case <-time.After(*grace):
						_ = child.Process.Kill()
						<-done
					}
					break wait
				}
			}
		}
		if !restart {
			return nil
		}
	}
}

// fetchEnv reads each service's credentials (the services family, seed
// 000's shape) and names them as the seed does.
func fetchEnv(ctx context.Context, c *client.Client, services []string, prefix string) ([]string, map[string]int, error) {
	var env []string
	versions := map[string]int{}
	for _, svc := range services {
		creds, err := c.GetServiceCredentials(ctx, svc)
		if err != nil {
			return nil, nil, fmt.Errorf("service %s: %w", svc, err)
		}
		versions[svc] = creds.Version
		keys := make([]string, 0, len(creds.Credentials))
		for k := range creds.Credentials {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			env = append(env, envName(prefix, svc, k)+"="+creds.Credentials[k])
		}
	}
	return env, versions, nil
}

// fetchCredentialEnv reads credential cred of service (the credentials
// family) and names its values as the services family keys them
// (apiKey: api_key, customFields as they are).
func fetchCredentialEnv(ctx context.Context, c *client.Client, service, cred, prefix string) ([]string, map[string]int, error) {
	cr, _, err := c.GetCredential(ctx, client.CredentialRead{Integration: service, CredentialID: cred})
	if err != nil {
		return nil, nil, fmt.Errorf("credential %s of %s: %w", cred, service, err)
	}
	var env []string
	for _, f := range credgate.SecretFields() {
		if v, ok := cr.Values[f.Name]; ok {
			env = append(env, envName(prefix, service, f.ServiceKey)+"="+v)
		}
	}
	keys := make([]string, 0, len(cr.CustomFields))
	for k := range cr.CustomFields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, envName(prefix, service, k)+"="+cr.CustomFields[k])
	}
	return env, map[string]int{service: cr.Version}, nil
}

// envName is seed 000's variable name: prefix + SERVICE_ID + "_" + KEY in
// upper case, what is not a letter, digit or _ made _.
func envName(prefix, service, key string) string {
	return prefix + envPart(service) + "_" + envPart(key)
}

func envPart(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		case 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_':
			return r
		}
		return '_'
	}, s)
}

// childEnv is the environment the command inherits: credgate run's own,
// without its token.
func childEnv(environ []string) []string {
	return slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
		return strings.HasPrefix(kv, "CREDGATE_TOKEN=") || strings.HasPrefix(kv, "CREDGATE_TOKEN_FILE=")
	})
}

func maps2Equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// exitError makes credgate exit with a command's code.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("the command exited with %d", e.code) }

// exitOf is the outcome of a command that ended: its exit code (128 +
// the signal that ended it), as exitError when not 0.
func exitOf(err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			code = 128 + int(st.Signal())
		}
		return exitError{code}
	}
	return err
}

// cliClient is the API client of the CLI's commands: CREDGATE_ADDR or
// addr, the token CREDGATE_TOKEN or the file CREDGATE_TOKEN_FILE names.
func cliClient(addr string, getenv func(string) string) (*client.Client, error) {
	if addr == "" {
		return nil, errors.New("set CREDGATE_ADDR or -addr")
	}
	var tokens client.TokenSource
	switch {
	case strings.TrimSpace(getenv("CREDGATE_TOKEN")) != "":
		tokens = client.StaticToken(strings.TrimSpace(getenv("CREDGATE_TOKEN")))
	case getenv("CREDGATE_TOKEN_FILE") != "":
		tokens = &client.FileToken{Path: getenv("CREDGATE_TOKEN_FILE")}
	default:
		return nil, errors.New("set CREDGATE_TOKEN or CREDGATE_TOKEN_FILE")
	}
	return client.New(client.Options{Addr: addr, Tokens: tokens, UserAgent: "credgate-cli/" + version()})
}
