// Package kv is actorkv's Go API, over any backend, and the rules every
// client shares:
//
//   - Database, with Options, is the key-value API and its contract; the
//     conformance suite (storage/conformance) holds every backend to it.
//   - Requests is the one conversion between the Go API and the protocol:
//     each Database call becomes one request of messages/kv.proto, its
//     response comes back as Go values.
//   - Validator and Limits are the checks on input (DESIGN.md, "Bad
//     input"), made by the group's router, by the standalone service, and,
//     deterministically, by the state machine as it applies.
//   - Client is the one request-id and retry policy: it opens a session
//     through the log on its first write, stamps request ids, and retries
//     retryable failures (Backoff, Retryable) with the same id until the
//     call's deadline, over any Transport — one attempt of a request,
//     answered without blocking: the replicated group (actors.Group), the
//     standalone service (storage.Standalone) or a kvserver over gRPC
//     (kvclient).
//
// The package depends only on messages; every floor above storage speaks
// its types.
package kv
