package actorkvtest

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/actorkv/actorkv/actors/executor"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage"
)

// The ApplyRecorder: every batch every replica applied, for exactly-once
// checks.

// RequestKey identifies a write: its client session and sequence number.
type RequestKey struct {
	ClientID, Seq uint64
}

// Applied is one command as a replica applied it: an entry's, or one of the
// commands of an entry of several (group commit), which share its index.
type Applied struct {
	Index   uint64
	Request RequestKey // zero when the entry carried no request id
	// Version is the entry's outcome: its own index for a write executed
	// here, an earlier index for a retry answered with the first outcome,
	// 0 for a failure.
	Version uint64
	Code    messages.StatusCode
}

// Executed reports whether the entry executed its request (a successful
// write committed at this entry), rather than replaying an earlier outcome.
func (a Applied) Executed() bool {
	return a.Code == messages.StatusCode_OK && a.Version == a.Index
}

// ApplyRecorder is an executor.Observer that records, per replica, every
// entry applied, in order, and counts how often each index and each request
// was applied. It is safe for concurrent use; it outlives groups, so one
// recorder passed to successive clusters on the same directory (WithRecorder)
// counts across restarts.
type ApplyRecorder struct {
	mu       sync.Mutex
	log      map[uint32][]Applied
	indexes  map[uint32]map[uint64]int
	executed map[uint32]map[RequestKey]int
	seen     map[uint32]map[RequestKey]int
}

// NewApplyRecorder returns an empty recorder.
func NewApplyRecorder() *ApplyRecorder {
	return &ApplyRecorder{
		log:      map[uint32][]Applied{},
		indexes:  map[uint32]map[uint64]int{},
		executed: map[uint32]map[RequestKey]int{},
		seen:     map[uint32]map[RequestKey]int{},
	}
}

var _ executor.Observer = (*ApplyRecorder)(nil).Observe

// Observe implements executor.Observer.
func (r *ApplyRecorder) Observe(replica uint32, entries []storage.Entry, results []*messages.CommandResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.indexes[replica] == nil {
		r.indexes[replica] = map[uint64]int{}
		r.executed[replica] = map[RequestKey]int{}
		r.seen[replica] = map[RequestKey]int{}
	}
	for i, e := range entries {
		r.indexes[replica][e.Index]++
		var res *messages.CommandResult
		if i < len(results) {
			res = results[i]
		}
		// An entry of several writes (group commit) is recorded write by
		// write, each at the entry's index.
		cmds, rs := []*messages.Command{e.Cmd}, []*messages.CommandResult{res}
		if b := e.Cmd.GetBatch(); b != nil {
			cmds, rs = b.GetCommands(), res.GetBatch()
		}
		executed := map[RequestKey]bool{} // in this entry: a later one is a retry answered from the session
		for j, cmd := range cmds {
			a := Applied{Index: e.Index}
			if rid := cmd.GetRequestId(); rid.GetClientId() != 0 {
				a.Request = RequestKey{ClientID: rid.GetClientId(), Seq: rid.GetSeq()}
			}
			if j < len(rs) {
				a.Version, a.Code = rs[j].GetVersion(), rs[j].GetStatus().GetCode()
			}
			r.log[replica] = append(r.log[replica], a)
			if a.Request != (RequestKey{}) {
				r.seen[replica][a.Request]++
				if a.Executed() && !executed[a.Request] {
					executed[a.Request] = true
					r.executed[replica][a.Request]++
				}
			}
		}
	}
}

// Log returns the entries replica applied, in order.
func (r *ApplyRecorder) Log(replica uint32) []Applied {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log[replica])
}

// Count returns how many entries replica applied.
func (r *ApplyRecorder) Count(replica uint32) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.log[replica])
}

// IndexCount returns how many times replica applied index.
func (r *ApplyRecorder) IndexCount(replica uint32, index uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.indexes[replica][index]
}

// Executions returns how many entries of replica executed request k (see
// Applied.Executed): exactly once means 1.
func (r *ApplyRecorder) Executions(replica uint32, k RequestKey) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.executed[replica][k]
}

// Occurrences returns how many applied entries of replica carried request k
// (retries that reached the log count too).
func (r *ApplyRecorder) Occurrences(replica uint32, k RequestKey) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[replica][k]
}

// ExecutedAt returns the index at which replica executed request k.
func (r *ApplyRecorder) ExecutedAt(replica uint32, k RequestKey) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.log[replica] {
		if a.Request == k && a.Executed() {
			return a.Index, true
		}
	}
	return 0, false
}

// Duplicates describes every index replica applied more than once, every
// request it executed more than once, and every index that did not follow
// the one before it; it returns "" when there is none.
func (r *ApplyRecorder) Duplicates(replica uint32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for idx, n := range r.indexes[replica] {
		if n > 1 {
			out = append(out, fmt.Sprintf("index %d applied %d times", idx, n))
		}
	}
	for k, n := range r.executed[replica] {
		if n > 1 {
			out = append(out, fmt.Sprintf("request %d/%d executed %d times", k.ClientID, k.Seq, n))
		}
	}
	var prev uint64
	for _, a := range r.log[replica] {
		if a.Index < prev { // the commands of one entry share its index
			out = append(out, fmt.Sprintf("index %d applied after %d", a.Index, prev))
		}
		prev = a.Index
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}
