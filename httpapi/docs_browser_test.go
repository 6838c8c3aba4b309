package httpapi_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestSwaggerUIInChromium opens /docs in a real headless Chromium (Debian's
// chromium; .ci/run installs it), checks that every documented operation
// is listed, authorizes with a bearer token through the UI, runs
// GET /debug/auth from it, and writes a screenshot as a test artifact.
func TestSwaggerUIInChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (apt-get install chromium; .ci/run does it)")
	}
	a := newAPI(t, apiOptions{})
	ten := tenant(t)
	tok := token(t, "browser", ten, "integration_viewer")

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
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	operations := 0
	for _, item := range s.spec.doc.Paths.Map() {
		operations += len(item.Operations())
	}
	var listed int
	var status, body, title string
	var shot []byte
	err = chromedp.Run(ctx,
		chromedp.Navigate(a.url+"/docs"),
		chromedp.WaitVisible(`.opblock`, chromedp.ByQuery),
		chromedp.Title(&title),
		chromedp.Evaluate(`document.querySelectorAll('.opblock').length`, &listed),
		// Authorize with the bearer token through the dialog.
		chromedp.Click(`button.btn.authorize`, chromedp.ByQuery),
		chromedp.WaitVisible(`.modal-ux input`, chromedp.ByQuery),
		chromedp.SendKeys(`.modal-ux input`, tok, chromedp.ByQuery),
		chromedp.Click(`.modal-ux .auth-btn-wrapper button.authorize`, chromedp.ByQuery),
		chromedp.Click(`.modal-ux button.btn-done`, chromedp.ByQuery),
		// Run GET /debug/auth from the page.
		// (the page enables "Try it out" already)
		chromedp.Click(`#operations-operations-debugAuth .opblock-summary`, chromedp.ByQuery),
		chromedp.Click(`#operations-operations-debugAuth button.execute`, chromedp.ByQuery),
		chromedp.WaitVisible(`#operations-operations-debugAuth .live-responses-table tbody .response-col_status`, chromedp.ByQuery),
		chromedp.Text(`#operations-operations-debugAuth .live-responses-table tbody .response-col_status`, &status, chromedp.ByQuery),
		chromedp.Text(`#operations-operations-debugAuth .live-responses-table tbody .response-col_description`, &body, chromedp.ByQuery),
		chromedp.FullScreenshot(&shot, 100), // 100: PNG,
	)
	if err != nil {
		t.Fatalf("driving Chromium: %v", err)
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
