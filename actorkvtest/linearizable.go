package actorkvtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/actorkv/actorkv/kv"
)

// The checkers: linearizability of a History with porcupine, per key, and
// the final reads that make "nothing acknowledged was lost" part of it.

// regInput and regOutput are one operation on one key's register.
type regInput struct {
	kind  OpKind
	value string
}

type regOutput struct {
	value string
	found bool
}

// regState is a key's state: absent, or holding a value.
type regState struct {
	value string
	found bool
}

// registerModel is a map of independent registers (put, get, delete),
// partitioned by key; an operation whose outcome is unknown returns never.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Metadata.(string)
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return regState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in := state.(regState), input.(regInput)
		switch in.kind {
		case OpPut:
			return true, regState{value: in.value, found: true}
		case OpDelete:
			return true, regState{}
		default:
			out := output.(regOutput)
			return out.found == s.found && (!s.found || out.value == s.value), s
		}
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		switch in.kind {
		case OpPut:
			return fmt.Sprintf("put %q", in.value)
		case OpDelete:
			return "delete"
		default:
			out := output.(regOutput)
			if !out.found {
				return "get -> (none)"
			}
			return fmt.Sprintf("get -> %q", out.value)
		}
	},
	DescribeState: func(state any) string {
		s := state.(regState)
		if !s.found {
			return "(none)"
		}
		return fmt.Sprintf("%q", s.value)
	},
	DescribeOperationMetadata: func(info any) string { return "key " + info.(string) },
}

// operations turns the history into porcupine's operations: failed ones
// are left out (they had no effect, and a failed read observed nothing);
// writes of unknown outcome never return. A put of unknown outcome whose
// value no read returned is left out too: "it never took effect" is one of
// its possible outcomes, and no read contradicts it, so the history is
// linearizable with it exactly when it is without it — and every write
// left open multiplies the checker's work.
func operations(h *History) []porcupine.Operation {
	ops := h.Ops()
	read := map[[2]string]bool{} // key, value a read returned
	for _, op := range ops {
		if op.Kind == OpGet && op.Outcome == OK && op.Found {
			read[[2]string{op.Key, op.Value}] = true
		}
	}
	var out []porcupine.Operation
	for _, op := range ops {
		if op.Outcome == Failed || (op.Outcome == Unknown && op.Kind == OpPut && !read[[2]string{op.Key, op.Value}]) {
			continue
		}
		ret := op.Return
		if op.Outcome == Unknown {
			ret = never
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: regInput{kind: op.Kind, value: op.Value},
			Call: op.Call, Output: regOutput{value: op.Value, found: op.Found}, Return: ret, Metadata: op.Key})
	}
	return out
}

// CheckResult is what Linearizable found.
type CheckResult struct {
	// Linearizable: the history has a linearization.
	Linearizable bool
	// TimedOut: the checker gave up (the verdict is unknown).
	TimedOut bool
	// Operations counts the operations checked, and Unknown those whose
	// outcome was unknown.
	Operations, Unknown int
	// Visualization is the path of an HTML page showing the history and
	// its longest partial linearizations per key ("" when linearizable).
	Visualization string
}

// Linearizable checks h with porcupine within timeout; when it is not
// linearizable it writes an HTML visualization into dir.
func Linearizable(h *History, timeout time.Duration, dir string) (CheckResult, error) {
	ops := operations(h)
	res := CheckResult{Operations: len(ops)}
	// Puts are told apart by their values: the pruning above needs them
	// unique per key.
	seen := map[[2]string]bool{}
	for _, op := range h.Ops() {
		if op.Kind == OpPut {
			k := [2]string{op.Key, op.Value}
			if seen[k] {
				return res, fmt.Errorf("two puts of %q to key %q: a checked history needs unique values per key", op.Value, op.Key)
			}
			seen[k] = true
		}
	}
	for _, op := range ops {
		if op.Return == never {
			res.Unknown++
		}
	}
	verdict, info := porcupine.CheckOperationsVerbose(registerModel, ops, timeout)
	switch verdict {
	case porcupine.Ok:
		res.Linearizable = true
		return res, nil
	case porcupine.Unknown:
		res.TimedOut = true
	}
	path := filepath.Join(dir, "history.html")
	if err := porcupine.VisualizePath(registerModel, info, path); err != nil {
		return res, fmt.Errorf("visualize: %w", err)
	}
	res.Visualization = path
	return res, nil
}

// CheckLinearizable fails t unless h is linearizable: a history that is not,
// and a check that times out, both fail (never a silent pass). The
// visualization of a failing history is kept in a directory named in the
// failure (outside t's temporary directory, which the test removes).
func CheckLinearizable(t testing.TB, h *History, timeout time.Duration) CheckResult {
	t.Helper()
	dir, err := os.MkdirTemp("", "actorkv-history-")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Linearizable(h, timeout, dir)
	switch {
	case err != nil:
		t.Fatalf("linearizability check: %v", err)
	case res.TimedOut:
		t.Fatalf("linearizability check of %d operations (%d of unknown outcome) timed out after %v: the verdict is unknown; see %s\n%s",
			res.Operations, res.Unknown, timeout, res.Visualization, Summary(h))
	case !res.Linearizable:
		t.Fatalf("the history of %d operations (%d of unknown outcome) is NOT linearizable; see %s\n%s",
			res.Operations, res.Unknown, res.Visualization, Summary(h))
	}
	_ = os.Remove(dir)
	return res
}

// FinalReads reads, linearizably through db, every key the history
// touched, and records the reads as client: a write acknowledged but lost
// then shows as a history that is not linearizable.
func FinalReads(ctx context.Context, h *History, client int, db kv.Database) error {
	r := h.Record(client, db)
	for _, k := range h.Keys() {
		if _, _, err := r.Get(ctx, []byte(k)); err != nil {
			return fmt.Errorf("final read of %q: %w", k, err)
		}
	}
	return nil
}

// Summary is a text rendering of h: counts per kind and outcome, and the
// last 40 operations, in return order.
func Summary(h *History) string {
	ops := h.Ops()
	counts := map[string]int{}
	for _, op := range ops {
		counts[op.Kind.String()+" "+op.Outcome.String()]++
	}
	errs := map[string]int{}
	for _, op := range ops {
		if op.Outcome == Unknown {
			msg := fmt.Sprint(op.Err)
			errs[msg[:min(len(msg), 90)]]++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d operations: %v\n", len(ops), counts)
	for msg, n := range errs {
		fmt.Fprintf(&b, "  %d of unknown outcome: %s\n", n, msg)
	}
	start := max(0, len(ops)-40)
	for _, op := range ops[start:] {
		fmt.Fprintf(&b, "  client %d %-6s %-10s %-14q found=%-5t %8.3fms..%8.3fms %s\n", op.Client, op.Kind, op.Key, op.Value, op.Found,
			float64(op.Call)/1e6, float64(op.Return)/1e6, op.Outcome)
	}
	return b.String()
}
