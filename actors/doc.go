// Package actors runs actorkv's replicated group: a supervisor actor that
// spawns a router and a group of replica actors, each replica owning a
// dragonboat NodeHost, an on-disk state machine, an executor actor and its
// own RocksDB (storage.Engine) under BasePath/replica-N.
//
// A request sent to the group's PID (the supervisor) goes to the router,
// which validates it and routes it by the operation table (messages.Ops):
// a write to the leader's replica, which proposes its command without
// blocking; once the entry commits on a majority, every replica's state
// machine hands its batch to its executor, which applies it, in log order,
// to that replica's RocksDB; the replica answers the sender with the
// commit version. Reads go to the leader's replica after a ReadIndex round,
// or to the local replica when stale.
//
// Group is the Go handle (start, stop, status, crash and restart replicas);
// Group.Transport is the group as a kv.Transport (one attempt of a
// request, no goroutine per request) and Group.Client a kv.Client over it.
// The sub-packages hold the actors: supervisor, router, replica (with the
// dragonboat state machine and the in-process transport) and executor.
package actors
