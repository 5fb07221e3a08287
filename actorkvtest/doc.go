// Package actorkvtest is actorkv's test harness, for the project's own
// scenario tests (tests/) and for anyone's: an in-process replica group that
// a test crashes, cuts off and slows, and checks that nothing was lost. It
// follows hashicorp/raft's MakeCluster and rqlite's system tests:
//
//	c := actorkvtest.NewCluster(t)         // 3 replicas in t.TempDir(), replica 0 leads
//	v, err := c.Client().Put(ctx, k, val)  // the kv.Database facade
//	c.Crash(2)                             // StopReplica: data stays on disk
//	... writes ...
//	c.Restart(2, false)                    // StartReplica from its data
//	c.EnsureSame(t)                        // same applied index and digests everywhere
//
// NewCluster starts the group with fast Raft timers (a 5 ms tick, elections
// after 20), registers Stop with t.Cleanup, and waits until every replica is
// up and replica 0 leads. Options: WithColumnFamilies, WithRetentionWindow,
// WithSnapshots (small values force snapshot catch-up), WithObserver,
// WithDir and WithRecorder (start a second cluster on the data and the
// apply record of a first one), WithConfig (anything else).
//
// Faults: Crash and Restart stop and start one replica (Restart with
// wipeRaftLog rebuilds it from scratch as a new Raft member, which catches
// up from the leader — see Group.StartReplica); TransferLeader moves the
// lead to a replica; Partition cuts a replica off the in-process network
// and Heal restores it; SlowNetwork delays the Raft messages sent to a
// replica; SlowStorage and InjectFaults set a replica's storage faults (they
// belong to one engine instance: a restarted replica has none); Reboot
// restarts the whole group on its directory.
//
// Checks: Leader, WaitLeader and WaitNewLeader read the leader the group
// learnt from Raft's events; Status and ReplicaStatus show each replica;
// EnsureSame polls until every replica the harness did not crash runs at the
// same applied index with equal digests, and fails with a per-replica table
// otherwise. Every Cluster records every batch every replica applied in an
// ApplyRecorder (Recorder): the apply order per replica, how often each index
// was applied, and how often each request id (client, seq) was executed as
// opposed to answered from its session — exactly once means Executions is 1
// on every replica. The group's log records are kept in a LogRecorder (Logs)
// for assertions, and written to the test's log.
//
// Rules for test authors: call a Cluster's methods from the test goroutine
// (they fail the test on error); wait with Eventually, EnsureSame or the
// Wait methods, which poll with a deadline (WaitTimeout) — never sleep to
// synchronise; keep the package well under four minutes under -race on two
// cores.
//
// Histories and chaos: a History records what clients asked and were
// answered (Record wraps any kv.Database; writes of unknown outcome are kept
// as such); CheckLinearizable checks it with porcupine, per key, after
// FinalReads made lost writes visible (a timed-out check fails, and a
// failing history is written as porcupine's HTML visualization); StartChaos
// injects seeded faults — crash, rebuild, partition, slow network, slow or
// failing disk, leader moves — one replica at a time (with a slow disk
// overlapping now and then) until Stop; ChaosSeed takes ACTORKV_CHAOS_SEED
// to replay a failure; Workload is a register workload for all this. Bank
// checks atomic commits: read-modify-write transfers between accounts,
// audited at snapshot versions and at the end (a conserved total).
//
// One concept a file: cluster.go (the Cluster and its options), faults.go
// (crash, restart, partition, slow links and storage, leadership),
// converge.go (status, EnsureSame, Eventually), recorder.go (the
// ApplyRecorder), logs.go (the LogRecorder), history.go (History),
// linearizable.go (the checkers), chaos.go (Chaos), workload.go and bank.go.
package actorkvtest
