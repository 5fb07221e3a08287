// Package storage is actorkv's storage layer: the Database interface (the
// key-value API every backend offers, with its contract), the input Validator
// shared by every write path, and Engine, the RocksDB engine.
//
// The Engine is both a standalone Database and the replicated state machine's
// storage. All writes, standalone or replicated, run through ApplyBatch: a
// batch of commands applied in order as one RocksDB write batch together with
// the applied index. The outcome of each command (an atomic commit's conflict
// check, an exactly-once duplicate, the retention window) is decided from the
// log alone — the commands and the log times their proposers stamped on them
// — and the state it depends on (conflict history, client sessions) is
// persisted in the same write batch, so every replica decides the same and a
// restart neither loses nor repeats an entry.
//
// The package sends and receives no actor messages; the executor actor
// (actors/executor) is its only writer in the replicated group.
package storage
