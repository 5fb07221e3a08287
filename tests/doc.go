// Package tests holds the scenario tests of the replicated group:
// replication, restarts and catch-up, snapshot installs, bad input,
// supervision, exactly-once retries and sessions, leadership and goroutine
// leaks, and the conformance suite (storage/conformance) run against the
// group, through the server's core and over gRPC. They use the harness of
// package actorkvtest. Process-level tests (kvserver, kvctl) live in
// tests/e2e.
//
// Rules for test authors: call a Cluster's methods from the test goroutine
// (they fail the test on error); wait with Eventually, EnsureSame or the
// Wait methods, which poll with a deadline (WaitTimeout) — never sleep to
// synchronise; keep the package well under four minutes under -race on two
// cores.
package tests
