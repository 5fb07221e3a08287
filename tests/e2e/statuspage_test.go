package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/actorkv/actorkv/actorkvtest/browser"
)

// pageView is what the status page shows, read from its DOM.
type pageView struct {
	Rows []struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Digest string `json:"digest"`
		Text   string `json:"text"`
	} `json:"rows"`
	Summary string   `json:"summary"`
	Live    string   `json:"live"`
	Events  []string `json:"events"`
	Members int      `json:"members"`
}

// readPage is the expression that reads a pageView from the page.
const readPage = `JSON.stringify({
  rows: [...document.querySelectorAll('#replicas tbody tr[data-replica]')].map(r => ({id: r.dataset.replica, state: r.dataset.state, digest: r.dataset.digest, text: r.innerText})),
  summary: document.getElementById('summary').textContent,
  live: document.getElementById('updated').textContent,
  events: [...document.querySelectorAll('#events li[data-kind]')].map(l => l.dataset.kind + ' ' + l.innerText),
  members: document.querySelectorAll('#members tbody tr').length,
})`

// TestStatusPageInChromium loads the status page of a kvserver in headless
// Chromium: it shows three replicas with a leader and one digest, the
// membership, and live updates; once replica 2 fail-stops (an injected storage fault), the
// page shows it down, with the fail-stop among the recent events, without
// a reload.
func TestStatusPageInChromium(t *testing.T) {
	path, err := browser.Find()
	if errors.Is(err, browser.ErrNoChromium) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverConfig{})
	s.ctl(t, "put", "page/k", "v0")

	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	tab, closeBrowser := browser.Start(ctx, path, 1280, 900)
	defer closeBrowser()
	if err := chromedp.Do(tab, chromedp.Navigate("http://"+s.HTTP+"/")); err != nil {
		t.Fatalf("load the page in %s: %v", path, err)
	}

	var v pageView
	read := func() error { return browser.Eval(tab, readPage, &v) }
	eventually(t, waitTimeout, func() error {
		if err := read(); err != nil {
			return err
		}
		if len(v.Rows) != 3 {
			return fmt.Errorf("%d replica rows shown, want 3: %+v", len(v.Rows), v)
		}
		leaders := 0
		for _, r := range v.Rows {
			switch r.State {
			case "leader":
				leaders++
			case "follower":
			default:
				return fmt.Errorf("replica %s shown %q: %+v", r.ID, r.State, v)
			}
		}
		if leaders != 1 || !strings.Contains(v.Summary, "3/3 replicas running") || !strings.Contains(v.Summary, "leader: replica") {
			return fmt.Errorf("want one leader of three running replicas: %+v", v)
		}
		if !strings.HasPrefix(v.Live, "live") || v.Members != 3 {
			return fmt.Errorf("want live updates and three members: %+v", v)
		}
		for _, r := range v.Rows { // no writes meanwhile: one digest
			if r.Digest == "" || r.Digest != v.Rows[0].Digest {
				return fmt.Errorf("want the same digest on every replica: %+v", v)
			}
		}
		return nil
	})

	// Replica 2 fail-stops at its next write.
	s.ctl(t, "fault", "--replicas", "2", "--fail-after", "1")
	s.ctl(t, "put", "page/k", "v1")
	eventually(t, waitTimeout, func() error {
		if err := read(); err != nil {
			return err
		}
		for _, r := range v.Rows {
			if r.ID == "2" && r.State != "down" {
				return fmt.Errorf("replica 2 shown %q, want down: %+v", r.State, v)
			}
			if r.ID != "2" && r.State != "leader" && r.State != "follower" {
				return fmt.Errorf("replica %s shown %q: %+v", r.ID, r.State, v)
			}
		}
		if !strings.Contains(v.Summary, "2/3 replicas running") {
			return fmt.Errorf("summary %q, want 2/3 replicas running", v.Summary)
		}
		for _, e := range v.Events {
			if strings.HasPrefix(e, "fail-stop") && strings.Contains(e, "replica 2 fail-stopped") {
				return nil
			}
		}
		return fmt.Errorf("no fail-stop of replica 2 among the events: %q", v.Events)
	})
}
