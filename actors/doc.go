// Package actors runs actorkv's replicated group: a supervisor actor that
// spawns a router and a group of replica actors, each replica owning a
// dragonboat NodeHost, an on-disk state machine, an executor actor and its
// own RocksDB (storage.Engine) under BasePath/replica-N.
//
// A write sent to the group's PID (the supervisor) goes to the router, which
// validates it and forwards it to the leader's replica; the replica proposes
// the encoded *messages.Command without blocking; once the entry commits on
// a majority, every replica's state machine hands its batch to its executor,
// which applies it, in log order, to that replica's RocksDB; the replica
// answers the sender with the commit version.
//
// Group is the Go handle (start, stop, status, crash and restart replicas);
// Client is the kv.Database facade over the group's messages. The
// sub-packages hold the actors: supervisor, router, replica (with the
// dragonboat state machine and the in-process transport) and executor.
package actors
