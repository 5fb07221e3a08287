// Command screenshot saves a PNG of kvserver's status page as headless
// Chromium shows it, once the page shows its replicas and has had time to
// draw its charts. scripts/screenshot.sh runs it against a server under
// load for docs/status-page.png.
//
//	go run ./scripts/screenshot -url http://127.0.0.1:9100/ -out page.png
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/actorkv/actorkv/actorkvtest/browser"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:9100/", "the status page")
	out := flag.String("out", "status-page.png", "the PNG to write")
	width := flag.Int("width", 1280, "window width, CSS pixels")
	height := flag.Int("height", 900, "window height, CSS pixels")
	settle := flag.Duration("settle", 3*time.Second, "how long to let the page poll after its replicas show")
	flag.Parse()
	if err := run(*url, *out, *width, *height, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "screenshot:", err)
		os.Exit(1)
	}
}

func run(url, out string, width, height int, settle time.Duration) error {
	path, err := browser.Find()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+settle)
	defer cancel()
	tab, closeBrowser := browser.Start(ctx, path, width, height)
	defer closeBrowser()
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("load %s: %w", url, err)
	}
	if err := chromedp.Do(tab, chromedp.WaitVisible(`#replicas tbody tr[data-replica]`)); err != nil {
		return fmt.Errorf("wait for the replicas on %s: %w", url, err)
	}
	// The page polls every 1.5 s: let it draw a few more samples.
	if err := chromedp.Do(tab, chromedp.Sleep(settle)); err != nil {
		return err
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	return os.WriteFile(out, png, 0o644)
}
