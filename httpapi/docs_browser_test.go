package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// TestSwaggerUIInChromium opens /docs in a real headless Chromium (Debian's
// chromium; .ci/run installs it) with a new, empty profile, checks that every
// documented operation is listed, authorizes with a bearer token through the
// UI, runs GET /debug/auth from it, and writes a screenshot as a test
// artifact.
//
// The page is driven the way a person would use it, and every wait polls
// what the page shows (its text, read with Runtime.evaluate) until a
// deadline. chromedp's node queries (WaitVisible, Click, SendKeys) follow
// the DOM through its change events; with newer Chromium releases they can
// miss a node React re-renders and wait forever although the page shows it.
func TestSwaggerUIInChromium(t *testing.T) {
	a := newAPI(t, apiOptions{})
	ten := tenant(t)
	tok := token(t, "browser", ten, "integration_viewer")
	ctx := startChromium(t)

	operations := 0
	for _, item := range s.spec.doc.Paths.Map() {
		operations += len(item.Operations())
	}
	p := &page{t: t, ctx: ctx, step: 20 * time.Second}
	const op = `#operations-operations-debugAuth`
	var title string
	if err := chromedp.Run(ctx, chromedp.Navigate(a.url+"/docs"), chromedp.Title(&title)); err != nil {
		t.Fatalf("opening /docs: %v", err)
	}
	p.waitTrue("every operation listed", fmt.Sprintf(`document.querySelectorAll('.opblock').length >= %d`, operations))
	listed := p.evalInt(`document.querySelectorAll('.opblock').length`)

	// Authorize with the bearer token through the dialog.
	p.click("the Authorize button", `button.btn.authorize`)
	p.focus("the token field", `.modal-ux input`)
	if err := chromedp.Run(ctx, input.InsertText(tok)); err != nil {
		t.Fatalf("typing the token: %v", err)
	}
	p.click("the dialog's Authorize button", `.modal-ux .auth-btn-wrapper button.authorize`)
	p.waitText("the dialog saying it is authorized", `.modal-ux`, "Logout")
	p.click("the dialog's Close button", `.modal-ux button.btn-done`)
	p.waitTrue("the dialog closed", `document.querySelector('.modal-ux') === null`)

	// Run GET /debug/auth from the page ("Try it out" is on already).
	p.scope = op
	p.click("the debugAuth operation", op+` .opblock-summary`)
	// Opening an operation makes Swagger UI resolve its part of the document
	// in the background; Execute before that ends fails inside Swagger UI
	// ("Operation get_debug_auth not found") and the request is never sent.
	p.waitTrue("the operation resolved", `!!window.ui.specSelectors.specResolvedSubtree(['paths', '/debug/auth', 'get'])`)
	p.click("the Execute button", op+` button.execute`)
	status := p.waitText("the live response's status", op+` .live-responses-table tbody .response-col_status`, "200")
	body := p.waitText("the live response's body", op+` .live-responses-table tbody .response-col_description`, ten)

	var shot []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&shot, 100)); err != nil { // 100: PNG
		t.Fatalf("screenshot: %v", err)
	}
	if listed != operations {
		t.Errorf("Swagger UI lists %d operations; the document has %d", listed, operations)
	}
	if !strings.Contains(status, "200") || !strings.Contains(body, ten) {
		t.Errorf("GET /debug/auth from Swagger UI: status %q, body %.200q; want 200 naming tenant %s", status, body, ten)
	}
	path := filepath.Join(t.ArtifactDir(), "docs.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%q lists %d operations; screenshot %s (%d bytes)", title, listed, path, len(shot))
}

// page drives a page through Runtime.evaluate only. Every wait polls until
// its condition holds or step has passed; a failure names the step and
// shows the start of the page's text.
type page struct {
	t    *testing.T
	ctx  context.Context
	step time.Duration
	// scope is the part of the page a failure message shows.
	scope string
}

// eval evaluates the JavaScript expression js into out.
func (p *page) eval(js string, out any) error {
	return chromedp.Run(p.ctx, chromedp.Evaluate(js, out))
}

func (p *page) evalInt(js string) int {
	p.t.Helper()
	var n int
	if err := p.eval(js, &n); err != nil {
		p.t.Fatalf("evaluating %s: %v", js, err)
	}
	return n
}

// poll evaluates js until it returns a non-empty string, and returns it.
func (p *page) poll(what, js string) string {
	p.t.Helper()
	deadline := time.Now().Add(p.step)
	for {
		var got string
		err := p.eval(js, &got)
		if err == nil && got != "" {
			return got
		}
		if p.ctx.Err() != nil || time.Now().After(deadline) {
			p.t.Fatalf("waiting %s for %s: not seen (last error: %v)%s", p.step, what, err, p.diagnose())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// diagnose saves a screenshot as an artifact and returns the text of the
// part of the page the test is at (scope), for a failure message.
func (p *page) diagnose() string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), 10*time.Second)
	defer cancel()
	var text string
	var shot []byte
	_ = chromedp.Run(ctx, chromedp.Evaluate(fmt.Sprintf(`(() => { const e = document.querySelector(%s) || document.body; return e ? e.innerText.slice(0, 1500) : ''; })()`, jsString(p.scope)), &text))
	out := "; the page shows:\n" + text
	if chromedp.Run(ctx, chromedp.FullScreenshot(&shot, 100)) == nil {
		path := filepath.Join(p.t.ArtifactDir(), "docs-failure.png")
		if os.WriteFile(path, shot, 0o644) == nil {
			out += "\nscreenshot: " + path
		}
	}
	return out
}

func (p *page) waitTrue(what, cond string) {
	p.t.Helper()
	p.poll(what, `(`+cond+`) ? 'yes' : ''`)
}

// waitText waits until the element sel shows want and returns its text.
func (p *page) waitText(what, sel, want string) string {
	p.t.Helper()
	return p.poll(what, fmt.Sprintf(`(() => { const e = document.querySelector(%s); const s = e ? e.innerText : ''; return s.includes(%s) ? s : ''; })()`, jsString(sel), jsString(want)))
}

// click waits for the element sel to be on the page, scrolls it into view
// and clicks its centre with the mouse (Input.dispatchMouseEvent), as a
// person would.
func (p *page) click(what, sel string) {
	p.t.Helper()
	at := p.poll(what, fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		if (!e || e.disabled) return '';
		e.scrollIntoView({block: 'center'});
		const r = e.getBoundingClientRect();
		if (r.width === 0 || r.height === 0) return '';
		return JSON.stringify([r.left + r.width / 2, r.top + r.height / 2]);
	})()`, jsString(sel)))
	var xy [2]float64
	if err := json.Unmarshal([]byte(at), &xy); err != nil {
		p.t.Fatalf("%s: position %q: %v", what, at, err)
	}
	if err := chromedp.Run(p.ctx, chromedp.MouseClickXY(xy[0], xy[1])); err != nil {
		p.t.Fatalf("clicking %s: %v", what, err)
	}
}

// focus waits for the element sel and gives it the keyboard focus.
func (p *page) focus(what, sel string) {
	p.t.Helper()
	p.poll(what, fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return ''; e.focus(); return document.activeElement === e ? 'focused' : ''; })()`, jsString(sel)))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// startChromium starts a headless Chromium of the test's own (a profile
// of its own, removed after) and answers a context to drive it, bounded to
// two minutes.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (apt-get install chromium; .ci/run does it)")
	}
	// Chromium may still write to its profile while it exits, so the folder
	// is removed without failing the test.
	profile, err := os.MkdirTemp("", "credgate-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(profile) })
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 2400),
	)
	// Chromium now and then dies as it starts on these machines (its
	// crash handler finds no stack mapping): a start that fails is tried
	// again, at most three times.
	var err2 error
	for range 3 {
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(actx)
		if err2 = chromedp.Run(ctx); err2 != nil {
			cancel()
			cancelAlloc()
			continue
		}
		t.Cleanup(cancelAlloc)
		t.Cleanup(cancel)
		ctx, cancelTimeout := context.WithTimeout(ctx, 120*time.Second)
		t.Cleanup(cancelTimeout)
		return ctx
	}
	t.Fatalf("chromium did not start: %v", err2)
	return nil
}
