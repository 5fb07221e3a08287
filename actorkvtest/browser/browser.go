// Package browser drives a headless Chromium (Debian's chromium package)
// through the DevTools protocol (chromedp), for the status page's end-to-end
// test and scripts/screenshot.
package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/chromedp/chromedp"
)

// ErrNoChromium is returned by Find when no Chromium is installed.
var ErrNoChromium = errors.New("no chromium found: install Debian's chromium (scripts/deps.sh chromium) or set CHROMIUM to its path")

// Find returns the path of the Chromium to run: $CHROMIUM when set, else the
// first of chromium, chromium-browser, google-chrome on the PATH.
func Find() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("CHROMIUM=%s: %w", p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoChromium
}

// Start runs the Chromium at path headless, without its sandbox (CI runs as
// root, where the sandbox refuses to start), in a window of width x height,
// and returns a context for chromedp actions on one tab and the function
// that closes the browser and waits for it to exit.
func Start(ctx context.Context, path string, width, height int) (context.Context, context.CancelFunc) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(actx)
	return tab, func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
	}
}

// Eval evaluates expr, which must produce a JSON string, in the tab's page
// and decodes it into out.
func Eval(tab context.Context, expr string, out any) error {
	s, err := chromedp.Run(tab, chromedp.Evaluate[string](expr))
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(s), out)
}
