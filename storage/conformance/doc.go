// Package conformance holds the one test suite every implementation of
// kv.Database must pass: the standalone RocksDB engine and the
// replicated three-replica group alike. It is a library for tests, not a test
// itself; a backend's own _test.go file calls Run with a Factory that opens a
// fresh, empty instance:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t testing.TB, cfg conformance.Config) kv.Database {
//			db, err := open(t.TempDir(), cfg.ColumnFamilies, cfg.RetentionWindow, cfg.MaxSessions)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { db.Close() })
//			return db
//		})
//	}
//
// The cases are written from the contract on kv.Database and the
// "Bad input" table of DESIGN.md, never from one implementation's code, and
// they only use what every backend offers: the Database methods themselves.
// Errors are checked by status code and sentinel (errors.Is), never by text.
//
// Each top-level case runs on its own backend; the rows of a table inside a
// case share it and keep to their own keys. A backend must use
// kv.DefaultLimits but for the session cap (Config.MaxSessions): the
// suite probes those exact limits. Time is never
// waited for with a sleep: the retention-window cases poll with a deadline
// (Eventually) while sending the commands that advance the state machine's
// log time, so they converge on backends whose clock is the log's.
package conformance
