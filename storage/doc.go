// Package storage is actorkv's storage layer: Engine, the RocksDB engine;
// the replicated state machine's rules, as plain logic; and Standalone, the
// single-node service.
//
// All writes run through Engine.ApplyBatch: a batch of commands applied in
// order as one RocksDB write batch together with the applied index. The
// outcome of each command (a session opened or refused, an exactly-once
// duplicate, an atomic commit's conflict check, the retention window) is
// decided by the rules of machine.go from the log alone — the commands and
// the log times their proposers stamped on them — and the state it depends
// on (conflict history, client sessions) is persisted in the same write
// batch (apply.go), so every replica decides the same and a restart neither
// loses nor repeats an entry. Reads answer the read requests of the KV API
// (Engine.Serve); snapshot reads keep recent versions in memory (mvcc.go);
// snapshots stream the whole state (snapshot.go), and installing one is
// atomic for readers.
//
// Standalone feeds ApplyBatch from its own writer and serves requests as a
// kv.Transport; in the replicated group the executor actor
// (actors/executor) is the engine's only writer. The package sends and
// receives no actor messages.
package storage
