package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// newProbeCommand is kvserver probe: the health check of an image that has
// no shell and no curl (deploy/Dockerfile).
func newProbeCommand() *cobra.Command {
	timeout := 2 * time.Second
	cmd := &cobra.Command{
		Use:   "probe URL",
		Short: "Exit 0 if an HTTP GET of URL answers 2xx (a container's health check)",
		Long: `kvserver probe GETs URL — a kvserver's /readyz or /healthz, say
http://127.0.0.1:9100/readyz — and exits 0 when it answers 2xx within
--timeout. Otherwise it prints why on one line and exits 1. The container
image runs it as its health check, having no shell and no curl.`,
		Args:          cobra.ExactArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return probe(ctx, args[0])
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "how long to wait for the answer")
	return cmd
}

// probe GETs rawURL and returns nil on a 2xx answer; otherwise an error
// naming the status and the start of the body, or why there was none.
func probe(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("probe: %q is not an http:// or https:// URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("probe: %s: no answer in time", u)
		}
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("probe: %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
