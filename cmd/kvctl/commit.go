package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/messages"
)

const commitLong = `Commit a transaction atomically (FoundationDB semantics): every mutation or
none. It commits only if no write that committed after its read version
intersects one of its read conflict ranges; otherwise it fails with CONFLICT
(exit 4) and changes nothing. Prints the commit version:
  OK version N
JSON (-w json): {"version": N}

The transaction is read from --file (a JSON file, "-" for stdin) and/or built
from flags; flag mutations follow the file's, flag ranges are added to the
file's, and --read-version overrides the file's. The JSON shape (unknown
fields are rejected; keys and values are strings, or hex with --hex):

  {
    "read_version": 42,
    "mutations": [
      {"type": "set", "key": "a", "value": "1"},
      {"type": "delete", "key": "b", "column_family": "meta"},
      {"type": "clear_range", "begin": "c", "end": "d"}
    ],
    "read_conflict_ranges":  [{"begin": "a", "end": "b"}],
    "write_conflict_ranges": [{"begin": "a", "end": "b", "column_family": "meta"}]
  }

"type" is set (key, value), delete (key) or clear_range (begin, end; an empty
or missing end is the end of the key space). "column_family" is optional
everywhere (default: default, or --cf for flag-built entries). A range's end
is exclusive; an empty end is open. Take read_version from "kvctl
read-version" before reading; with read conflict ranges and read_version 0
the commit conflicts with every earlier write to those ranges (or is
TRANSACTION_TOO_OLD). A commit without read conflict ranges never conflicts.

Flags split K=V at the first "=" and B:E at the first ":" (use --hex for keys
holding those characters).`

// commitFile is the JSON shape of a transaction (see commitLong).
type commitFile struct {
	ReadVersion         *uint64        `json:"read_version"`
	Mutations           []mutationJSON `json:"mutations"`
	ReadConflictRanges  []keyRangeJSON `json:"read_conflict_ranges"`
	WriteConflictRanges []keyRangeJSON `json:"write_conflict_ranges"`
}

type mutationJSON struct {
	Type         string  `json:"type"`
	ColumnFamily string  `json:"column_family"`
	Key          *string `json:"key"`
	Value        *string `json:"value"`
	Begin        *string `json:"begin"`
	End          *string `json:"end"`
}

type keyRangeJSON struct {
	ColumnFamily string `json:"column_family"`
	Begin        string `json:"begin"`
	End          string `json:"end"`
}

// parseCommitJSON decodes the JSON shape of commitLong into an AtomicCommit;
// decode converts keys and values (hex or not).
func parseCommitJSON(data []byte, decode func(what, s string) ([]byte, error)) (*messages.AtomicCommit, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f commitFile
	if err := dec.Decode(&f); err != nil {
		return nil, usageErr("commit file: %v", err)
	}
	if dec.More() {
		return nil, usageErr("commit file: data after the JSON object")
	}
	c := &messages.AtomicCommit{}
	if f.ReadVersion != nil {
		c.ReadVersion = *f.ReadVersion
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for i, m := range f.Mutations {
		where := fmt.Sprintf("commit file: mutations[%d]", i)
		need := func(name string, p *string, want bool) error {
			if want && p == nil {
				return usageErr("%s: %s %q needs %q", where, "type", m.Type, name)
			}
			if !want && p != nil {
				return usageErr("%s: %s %q takes no %q", where, "type", m.Type, name)
			}
			return nil
		}
		pb := &messages.Mutation{ColumnFamily: m.ColumnFamily}
		var checks []error
		switch strings.ToLower(m.Type) {
		case "set":
			pb.Type = messages.MutationType_SET
			checks = []error{need("key", m.Key, true), need("value", m.Value, true), need("begin", m.Begin, false), need("end", m.End, false)}
		case "delete":
			pb.Type = messages.MutationType_DELETE
			checks = []error{need("key", m.Key, true), need("value", m.Value, false), need("begin", m.Begin, false), need("end", m.End, false)}
		case "clear_range":
			pb.Type = messages.MutationType_CLEAR_RANGE
			checks = []error{need("begin", m.Begin, true), need("key", m.Key, false), need("value", m.Value, false)}
		default:
			return nil, usageErr("%s: type %q is not set, delete or clear_range", where, m.Type)
		}
		for _, err := range checks {
			if err != nil {
				return nil, err
			}
		}
		var err error
		if pb.Type == messages.MutationType_CLEAR_RANGE {
			if pb.Key, err = decode(where+" begin", str(m.Begin)); err != nil {
				return nil, err
			}
			if pb.End, err = decode(where+" end", str(m.End)); err != nil {
				return nil, err
			}
		} else {
			if pb.Key, err = decode(where+" key", str(m.Key)); err != nil {
				return nil, err
			}
			if pb.Value, err = decode(where+" value", str(m.Value)); err != nil {
				return nil, err
			}
		}
		c.Mutations = append(c.Mutations, pb)
	}
	ranges := func(name string, in []keyRangeJSON) ([]*messages.KeyRange, error) {
		var out []*messages.KeyRange
		for i, r := range in {
			where := fmt.Sprintf("commit file: %s[%d]", name, i)
			b, err := decode(where+" begin", r.Begin)
			if err != nil {
				return nil, err
			}
			e, err := decode(where+" end", r.End)
			if err != nil {
				return nil, err
			}
			out = append(out, &messages.KeyRange{ColumnFamily: r.ColumnFamily, Begin: b, End: e})
		}
		return out, nil
	}
	var err error
	if c.ReadConflictRanges, err = ranges("read_conflict_ranges", f.ReadConflictRanges); err != nil {
		return nil, err
	}
	if c.WriteConflictRanges, err = ranges("write_conflict_ranges", f.WriteConflictRanges); err != nil {
		return nil, err
	}
	return c, nil
}

// splitPair splits s at the first sep.
func splitPair(flag, s, sep string) (string, string, error) {
	a, b, ok := strings.Cut(s, sep)
	if !ok {
		return "", "", usageErr("%s %q is not of the form A%sB", flag, s, sep)
	}
	return a, b, nil
}

func newCommitCommand(g *globals) *cobra.Command {
	var (
		file, cf                             string
		sets, deletes, clears, reads, writes []string
		readVersion                          uint64
	)
	cmd := &cobra.Command{
		Use:   "commit",
		Short: "Commit an atomic transaction (from JSON and/or flags)",
		Long:  commitLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := &messages.AtomicCommit{}
			if file != "" {
				var (
					data []byte
					err  error
				)
				if file == "-" {
					data, err = io.ReadAll(cmd.InOrStdin())
				} else {
					data, err = os.ReadFile(file)
				}
				if err != nil {
					return usageErr("--file: %v", err)
				}
				if c, err = parseCommitJSON(data, g.bytes); err != nil {
					return err
				}
			}
			for _, s := range sets {
				k, v, err := splitPair("--set", s, "=")
				if err != nil {
					return err
				}
				m := &messages.Mutation{Type: messages.MutationType_SET, ColumnFamily: cf}
				if m.Key, err = g.bytes("--set key", k); err != nil {
					return err
				}
				if m.Value, err = g.bytes("--set value", v); err != nil {
					return err
				}
				c.Mutations = append(c.Mutations, m)
			}
			for _, k := range deletes {
				m := &messages.Mutation{Type: messages.MutationType_DELETE, ColumnFamily: cf}
				var err error
				if m.Key, err = g.bytes("--delete key", k); err != nil {
					return err
				}
				c.Mutations = append(c.Mutations, m)
			}
			for _, s := range clears {
				r, err := g.keyRange("--clear-range", s, cf)
				if err != nil {
					return err
				}
				c.Mutations = append(c.Mutations, &messages.Mutation{Type: messages.MutationType_CLEAR_RANGE, ColumnFamily: cf, Key: r.Begin, End: r.End})
			}
			for _, s := range reads {
				r, err := g.keyRange("--read-range", s, cf)
				if err != nil {
					return err
				}
				c.ReadConflictRanges = append(c.ReadConflictRanges, r)
			}
			for _, s := range writes {
				r, err := g.keyRange("--write-range", s, cf)
				if err != nil {
					return err
				}
				c.WriteConflictRanges = append(c.WriteConflictRanges, r)
			}
			if cmd.Flags().Changed("read-version") {
				c.ReadVersion = readVersion
			}
			if file == "" && len(c.Mutations)+len(c.ReadConflictRanges)+len(c.WriteConflictRanges) == 0 {
				return usageErr("nothing to commit: give --file, or --set, --delete, --clear-range")
			}
			resp, err := do[*messages.AtomicCommitResponse](g, cmd, &messages.AtomicCommitRequest{Commit: c})
			if err != nil {
				return err
			}
			return g.printVersion(resp.GetVersion())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", `JSON transaction file ("-": stdin); shape in the help above`)
	f.StringVar(&cf, "cf", "", "column family of the flag-built mutations and ranges")
	f.StringArrayVar(&sets, "set", nil, "set K=V (repeatable)")
	f.StringArrayVar(&deletes, "delete", nil, "delete K (repeatable)")
	f.StringArrayVar(&clears, "clear-range", nil, "clear the range B:E (repeatable; empty E is open)")
	f.StringArrayVar(&reads, "read-range", nil, "read conflict range B:E (repeatable)")
	f.StringArrayVar(&writes, "write-range", nil, "write conflict range B:E (repeatable)")
	f.Uint64Var(&readVersion, "read-version", 0, "the version the transaction read at (see read-version)")
	return cmd
}

func (g *globals) keyRange(flag, s, cf string) (*messages.KeyRange, error) {
	b, e, err := splitPair(flag, s, ":")
	if err != nil {
		return nil, err
	}
	r := &messages.KeyRange{ColumnFamily: cf}
	if r.Begin, err = g.bytes(flag+" begin", b); err != nil {
		return nil, err
	}
	if r.End, err = g.bytes(flag+" end", e); err != nil {
		return nil, err
	}
	return r, nil
}
