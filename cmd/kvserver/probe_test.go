package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProbe runs kvserver probe's command against a server that answers
// 200 and 503, a closed port and bad URLs.
func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.Write([]byte("ready\n"))
			return
		}
		http.Error(w, "not ready: no leader", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	run := func(args ...string) error {
		cmd := newCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"probe"}, args...))
		return cmd.Execute()
	}
	if err := run(srv.URL + "/readyz"); err != nil {
		t.Errorf("probe of a 200: %v", err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{srv.URL + "/other"}, "503 Service Unavailable: not ready: no leader"},
		{[]string{"http://" + closed + "/readyz"}, "connection refused"},
		{[]string{"127.0.0.1:9100/readyz"}, "is not an http:// or https:// URL"},
		{[]string{"ftp://127.0.0.1/readyz"}, "is not an http:// or https:// URL"},
		{[]string{}, "accepts 1 arg"},
	} {
		err := run(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("probe %v: got %v, want an error with %q", c.args, err, c.want)
		}
	}
}
