// Package server is actorkv's network front end and the layers every front
// end shares:
//
//   - Config: the deployment configuration (TOML, DESIGN.md), with defaults
//     and a Validate that names the bad field;
//   - Open: the factory that builds the Database a configuration describes
//     (the standalone engine, or the replicated group in one process or as
//     one replica of a cluster);
//   - Core: the protocol-agnostic service core (validation, limits, request
//     ids, deadlines, timing) that the gRPC server and embedding programs
//     call with the protobuf requests of messages/kv.proto;
//   - the gRPC adapter (KV service, health service, message size limits,
//     malformed protobuf answered INVALID_ARGUMENT), Prometheus metrics, and
//     Server, which runs them all with graceful shutdown.
//
// The package sends actor messages only through the group's Client.
package server
