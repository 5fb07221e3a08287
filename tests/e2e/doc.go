// Package e2e holds actorkv's end-to-end tests: the kvserver and kvctl
// binaries, built once per run, talking real gRPC and HTTP on free loopback
// ports. They cover every KV operation through kvctl and through a Go gRPC
// client (replicated and standalone), every bad input of DESIGN.md answered
// with its gRPC code, deadlines, SIGTERM during a write load (no
// acknowledged write lost), metrics and health endpoints, bad
// configuration files, and a cluster of three processes, one replica each,
// through a leader's kill -9 and restarts (cluster_test.go), and the same
// cluster as Docker containers of deploy/docker-compose.yml, on an image
// built from those binaries (compose_test.go; skipped without Docker). The
// package has no API; everything is in its tests.
package e2e
