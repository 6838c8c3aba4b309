package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a buffer a child process and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// credgateRun runs credgate run as bob (a credential_reader) with args.
func (s *auditStory) credgateRun(env map[string]string, args ...string) (string, error) {
	var out lockedBuffer
	if env == nil {
		env = map[string]string{"CREDGATE_ADDR": s.base, "CREDGATE_TOKEN": s.tokens["bob"]}
	}
	environ := []string{"PATH=" + os.Getenv("PATH"), "KEEP=me"}
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	err := runCmd(context.Background(), args, func(k string) string { return env[k] }, environ, &out, &out)
	return out.String(), err
}

// TestRunPutsSeedNamedCredentialsIntoTheCommandsEnvironment: credgate run
// -service stripe -- env prints SERVICE_STRIPE_API_KEY with the current
// value (seed 000's name), keeps the rest of the environment but
// credgate's own token, and passes the command's exit code through; a
// fetch that fails starts nothing.
func TestRunPutsSeedNamedCredentialsIntoTheCommandsEnvironment(t *testing.T) {
	s := startAuditStory(t)
	out, err := s.credgateRun(nil, "-service", "stripe", "--", "env")
	if err != nil {
		t.Fatalf("credgate run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "SERVICE_STRIPE_API_KEY="+s.v2+"\n") || !strings.Contains(out, "KEEP=me") || strings.Contains(out, "CREDGATE_TOKEN") {
		t.Fatalf("the command's environment:\n%s", out)
	}
	if _, err := s.credgateRun(nil, "-service", "stripe", "--", "sh", "-c", "exit 7"); !errors.Is(err, exitError{7}) {
		t.Fatalf("exit code: %v", err)
	}
	marker := filepath.Join(t.TempDir(), "started")
	_, err = s.credgateRun(nil, "-service", "stripe", "-service", "nope", "--", "touch", marker)
	if err == nil || !strings.Contains(err.Error(), "SERVICE_NOT_FOUND") || !strings.Contains(err.Error(), "not started") {
		t.Fatalf("a failing fetch: %v", err)
	}
	if _, statErr := os.Stat(marker); statErr == nil {
		t.Fatal("the command started although a fetch failed")
	}
	// vera may not read values: refused, nothing started.
	if _, err := s.credgateRun(map[string]string{"CREDGATE_ADDR": s.base, "CREDGATE_TOKEN": s.tokens["vera"]}, "-service", "stripe", "--", "touch", marker); err == nil || !strings.Contains(err.Error(), "INSUFFICIENT_PERMISSIONS") {
		t.Fatalf("a viewer: %v", err)
	}
	// One credential by its id: named as the services family keys it.
	out, err = s.credgateRun(nil, "-service", "stripe", "-credential", s.credID, "-prefix", "APP_", "--", "env")
	if err != nil || !strings.Contains(out, "APP_STRIPE_API_KEY="+s.v2+"\n") {
		t.Fatalf("-credential: %v\n%s", err, out)
	}
	if envName("SERVICE_", "svc_abc123", "api_key") != "SERVICE_SVC_ABC123_API_KEY" || envName("SERVICE_", "stripe-eu.v2", "api_key") != "SERVICE_STRIPE_EU_V2_API_KEY" {
		t.Fatal("variable names")
	}
}

// TestRunWatchRestartsTheCommandAfterARotation: with -watch 1s, a rotation
// restarts the command with the new value within the poll interval; a
// signal reaches the command, whose exit ends credgate run; no value is
// on either command line.
func TestRunWatchRestartsTheCommandAfterARotation(t *testing.T) {
	s := startAuditStory(t)
	dir := t.TempDir()
	seen := filepath.Join(dir, "seen")
	cmdlines := filepath.Join(dir, "cmdlines")
	script := `trap 'exit 0' TERM; trap 'exit 42' USR1
echo "$SERVICE_STRIPE_API_KEY" >> "$SEEN"
tr '\0' ' ' < /proc/$$/cmdline >> "$CMDLINES"; echo >> "$CMDLINES"
tr '\0' ' ' < /proc/$PPID/cmdline >> "$CMDLINES"; echo >> "$CMDLINES"
while :; do sleep 0.1; done`
	env := map[string]string{"CREDGATE_ADDR": s.base, "CREDGATE_TOKEN": s.tokens["bob"], "SEEN": seen, "CMDLINES": cmdlines}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := s.credgateRun(env, "-service", "stripe", "-watch", "1s", "-grace", "5s", "--", "sh", "-c", script)
		done <- result{out, err}
	}()
	lines := func() []string {
		b, _ := os.ReadFile(seen)
		return strings.Fields(string(b))
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		end := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(end) {
				t.Fatalf("not within 15s: %s (seen %v)", what, lines())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the first start", func() bool { return len(lines()) == 1 })
	if lines()[0] != s.v2 {
		t.Fatalf("first start with %q", lines()[0])
	}
	v3 := "sk_live_third_" + randomHex(t)
	rotated := time.Now()
	s.do("alice", "POST", "/api/v1/credentials/"+s.credID+"/rotate", "r-alice-rotate-3", map[string]any{"apiKey": v3}, 200)
	waitFor("the restart with the new value", func() bool { return len(lines()) == 2 })
	if took := time.Since(rotated); lines()[1] != v3 || took > 3*time.Second {
		t.Fatalf("restarted with %q after %s", lines()[1], took)
	}
	time.Sleep(1500 * time.Millisecond) // more polls: no change, no restart
	if n := len(lines()); n != 2 {
		t.Fatalf("%d starts without a change", n)
	}
	// A signal to credgate run reaches the command; its exit code is run's.
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if !errors.Is(r.err, exitError{42}) {
			t.Fatalf("after SIGUSR1: %v\n%s", r.err, r.out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("credgate run did not end after its command did")
	}
	b, _ := os.ReadFile(cmdlines)
	for _, v := range []string{s.v2, v3, s.tokens["bob"]} {
		if strings.Contains(string(b), v) {
			t.Fatalf("a value is on a command line:\n%s", b)
		}
	}
	if !strings.Contains(string(b), "sh -c") {
		t.Fatalf("command lines not read:\n%s", b)
	}
}

// TestInstallCopiesTheBinary: credgate install PATH leaves an executable
// copy of the running binary there.
func TestInstallCopiesTheBinary(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "credgate")
	var out bytes.Buffer
	if err := installCmd([]string{dst}, &out); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	a, err1 := os.Stat(self)
	b, err2 := os.Stat(dst)
	if err1 != nil || err2 != nil || a.Size() != b.Size() || b.Mode().Perm()&0o111 == 0 {
		t.Fatalf("installed: %v %v %v", b, err1, err2)
	}
	if err := installCmd(nil, &out); err == nil {
		t.Fatal("install without a path")
	}
}
