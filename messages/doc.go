// Package messages holds actorkv's protocol: the protobuf messages that
// travel between actors (in process, by pointer) and over gRPC, and the one
// mapping between status codes, Go sentinel errors and gRPC codes.
//
// The .proto files sit beside the code generated from them (make proto
// regenerates it, make proto-check proves it current):
//
//   - kv.proto: the data model. StatusCode and Status; the replicated Command
//     envelope (one Raft log entry) with its Mutation and AtomicCommit; one
//     request and one response per Database operation; introspection
//     (StatusRequest, ReplicaStatus, content digests).
//   - actors.proto: the messages of the actor group itself: ApplyBatch and
//     its result between a replica and its executor, replica lifecycle
//     (ReplicaUp, ReplicaDown, StopReplica, StartReplica, ReplaceMember),
//     the router's Routes, LeaderChanged and TransferLeader.
//   - storage.proto: records the storage engine persists beside the data
//     (the machine state as per-batch deltas and checkpoints, the snapshot
//     header); they are replicated state.
//   - service.proto: the KV gRPC service of kvserver, built from the
//     messages of kv.proto, with the Batch stream's Call and Reply.
//   - kv.thrift: the same service in Thrift (kvserver's server.thrift_listen),
//     its structs mirroring kv.proto's messages field for field; its Go code
//     is the package thriftkv (make thrift, make thrift-check).
//
// Each StatusCode other than OK maps to exactly one sentinel error
// (errors.go) and one gRPC code (grpc.go), defined nowhere else. Errors
// built here (Errorf, Status.Err, FromGRPC) match their sentinel with
// errors.Is; CodeOf and StatusOf go the other way, and IsRetryable tells
// transient failures (UNAVAILABLE, TIMEOUT) from final ones.
package messages
