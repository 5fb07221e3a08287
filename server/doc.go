// Package server is actorkv's network front end and the layers every front
// end shares:
//
//   - Config: the deployment configuration (TOML, DESIGN.md), with defaults
//     and a Validate that names the bad field;
//   - Open: the Backend a configuration describes — the standalone service,
//     or the replicated group in one process or as one replica of a
//     cluster — as a kv.Transport, with this process's kv.Client over it;
//   - Core: the protocol-agnostic service core over one Submitter (that
//     client): unary calls (Do) and Batch calls (Start) take the same path,
//     bounded by the caller's deadline or the core's default, and timed;
//   - the gRPC adapter, registered from the operation table (no method per
//     operation), with the health service, message size limits and
//     malformed protobuf answered INVALID_ARGUMENT;
//   - the Thrift adapter (server.thrift_listen, messages/kv.thrift): each
//     call's struct converted to its protobuf request around Core.Do, frames
//     and collections bounded before anything is allocated for them;
//   - Prometheus metrics; the operator's status page (status.go: the
//     replicas, membership, per-second samples of the request metrics, and
//     the group's events it subscribes to); and Server, which runs them all
//     with graceful
//     shutdown.
//
// The package sends actor messages only through the group's transport.
package server
