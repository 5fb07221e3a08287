package main

import (
	"encoding/hex"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/messages"
)

// bytes decodes a key or value typed on the command line (hex with --hex).
func (g *globals) bytes(what, s string) ([]byte, error) {
	if !g.hex {
		return []byte(s), nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, usageErr("%s %q is not hex: %v", what, s, err)
	}
	return b, nil
}

// text formats a key or value for output (hex with --hex).
func (g *globals) text(b []byte) string {
	if g.hex {
		return hex.EncodeToString(b)
	}
	return string(b)
}

func (g *globals) json() bool { return g.writeOut == "json" }

// prefixEnd is the smallest key after every key starting with prefix; nil
// (the open end) when there is none (prefix empty or all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func parseConsistency(s string) (messages.Consistency, error) {
	switch strings.ToLower(s) {
	case "linearizable", "l", "":
		return messages.Consistency_LINEARIZABLE, nil
	case "stale", "s":
		return messages.Consistency_STALE, nil
	}
	return 0, usageErr("--consistency %q is not linearizable or stale", s)
}

// versionResult is the JSON output of every write and of read-version.
type versionResult struct {
	Version uint64 `json:"version"`
}

func (g *globals) printVersion(v uint64) error {
	if g.json() {
		return g.printJSON(versionResult{Version: v})
	}
	return g.printf("OK version %d\n", v)
}

const putLong = `Set KEY to VALUE and print its commit version:
  OK version N
Without VALUE, the value is read from standard input, whole (for values past
the shell's argument limit: kvctl put big < file).
JSON (-w json): {"version": N}`

func newPutCommand(g *globals) *cobra.Command {
	var cf string
	cmd := &cobra.Command{
		Use:   "put KEY [VALUE]",
		Short: "Set a key's value",
		Long:  putLong,
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := g.bytes("key", args[0])
			if err != nil {
				return err
			}
			arg := ""
			if len(args) == 2 {
				arg = args[1]
			} else {
				in, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<30))
				if err != nil {
					return usageErr("read the value from standard input: %v", err)
				}
				arg = string(in)
			}
			value, err := g.bytes("value", arg)
			if err != nil {
				return err
			}
			resp, err := do[*messages.PutResponse](g, cmd, &messages.PutRequest{ColumnFamily: cf, Key: key, Value: value})
			if err != nil {
				return err
			}
			return g.printVersion(resp.GetVersion())
		},
	}
	cmd.Flags().StringVar(&cf, "cf", "", "column family (default: default)")
	return cmd
}

const getLong = `Read one key, a range or a prefix.

  get KEY                  the value of KEY
  get KEY [END] --range    the entries of [KEY, END); no END (or "") is open
  get KEY END              the same as --range
  get PREFIX --prefix      the entries whose key starts with PREFIX
                           ("" --prefix: every key)

--version V reads the snapshot at version V (SnapshotRead, SnapshotGetRange);
otherwise --consistency picks linearizable (the default) or stale.
--keys-only with --prefix (not --reverse, not --version) lists keys with
ListKeys; otherwise it drops the values of a range read.

Output (table): for each entry found, the key on one line and the value on the
next (etcdctl's simple format); with --keys-only the keys; with
--print-value-only the values. A missing key prints nothing (exit 0).
JSON (-w json): {"found": bool, "key": "...", "value": "..."} for one key;
{"kvs": [{"key": "...", "value": "..."}, ...], "count": N} for a range
("value" is left out with --keys-only). Keys and values are strings, or hex
with --hex.`

// kvJSON is one entry of get's JSON output.
type kvJSON struct {
	Key   string  `json:"key"`
	Value *string `json:"value,omitempty"`
}

type getJSON struct {
	Found bool    `json:"found"`
	Key   string  `json:"key"`
	Value *string `json:"value,omitempty"`
}

type rangeJSON struct {
	KVs   []kvJSON `json:"kvs"`
	Count int      `json:"count"`
}

func newGetCommand(g *globals) *cobra.Command {
	var (
		cf, consistency                         string
		isRange, prefix, reverse, keysOnly, pvo bool
		limit                                   int32
		version                                 uint64
	)
	cmd := &cobra.Command{
		Use:   "get KEY [END]",
		Short: "Read a key, a range or a prefix",
		Long:  getLong,
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			snapshot := fl.Changed("version")
			if snapshot && fl.Changed("consistency") {
				return usageErr("--consistency does not apply to a --version (snapshot) read")
			}
			cons, err := parseConsistency(consistency)
			if err != nil {
				return err
			}
			if keysOnly && pvo {
				return usageErr("--keys-only and --print-value-only exclude each other")
			}
			if len(args) == 2 {
				isRange = true
			}
			if prefix && isRange {
				return usageErr("--prefix takes one argument and excludes --range")
			}
			begin, err := g.bytes("key", args[0])
			if err != nil {
				return err
			}
			if !isRange && !prefix {
				if fl.Changed("limit") || reverse {
					return usageErr("--limit and --reverse need --range or --prefix")
				}
				return g.getOne(cmd, cf, begin, cons, snapshot, version, keysOnly, pvo)
			}
			var end []byte
			if prefix {
				end = prefixEnd(begin)
			} else if len(args) == 2 {
				if end, err = g.bytes("range end", args[1]); err != nil {
					return err
				}
			}
			var kvs []*messages.KeyValue
			switch {
			case snapshot:
				var resp *messages.SnapshotGetRangeResponse
				resp, err = do[*messages.SnapshotGetRangeResponse](g, cmd, &messages.SnapshotGetRangeRequest{ColumnFamily: cf, Begin: begin, End: end, Limit: limit, Reverse: reverse, Version: version})
				kvs = resp.GetKvs()
			case prefix && keysOnly && !reverse:
				var resp *messages.ListKeysResponse
				resp, err = do[*messages.ListKeysResponse](g, cmd, &messages.ListKeysRequest{ColumnFamily: cf, Prefix: begin, Limit: limit, Consistency: cons})
				for _, k := range resp.GetKeys() {
					kvs = append(kvs, &messages.KeyValue{Key: k})
				}
			default:
				var resp *messages.GetRangeResponse
				resp, err = do[*messages.GetRangeResponse](g, cmd, &messages.GetRangeRequest{ColumnFamily: cf, Begin: begin, End: end, Limit: limit, Reverse: reverse, Consistency: cons})
				kvs = resp.GetKvs()
			}
			if err != nil {
				return err
			}
			return g.printKVs(kvs, keysOnly, pvo)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cf, "cf", "", "column family (default: default)")
	f.StringVar(&consistency, "consistency", "linearizable", "linearizable (l) or stale (s)")
	f.BoolVar(&isRange, "range", false, "read the range [KEY, END)")
	f.BoolVar(&prefix, "prefix", false, "read the keys starting with KEY")
	f.Int32Var(&limit, "limit", 0, "most entries of a range or prefix (0: the server's maximum, 10,000)")
	f.BoolVar(&reverse, "reverse", false, "range or prefix in descending key order")
	f.BoolVar(&keysOnly, "keys-only", false, "print keys only")
	f.BoolVar(&pvo, "print-value-only", false, "print values only")
	f.Uint64Var(&version, "version", 0, "read the snapshot at this version")
	return cmd
}

func (g *globals) getOne(cmd *cobra.Command, cf string, key []byte, cons messages.Consistency, snapshot bool, version uint64, keysOnly, pvo bool) error {
	var (
		value []byte
		found bool
	)
	if snapshot {
		resp, err := do[*messages.SnapshotReadResponse](g, cmd, &messages.SnapshotReadRequest{ColumnFamily: cf, Key: key, Version: version})
		if err != nil {
			return err
		}
		value, found = resp.GetValue(), resp.GetFound()
	} else {
		resp, err := do[*messages.GetResponse](g, cmd, &messages.GetRequest{ColumnFamily: cf, Key: key, Consistency: cons})
		if err != nil {
			return err
		}
		value, found = resp.GetValue(), resp.GetFound()
	}
	if g.json() {
		out := getJSON{Found: found, Key: g.text(key)}
		if found && !keysOnly {
			v := g.text(value)
			out.Value = &v
		}
		return g.printJSON(out)
	}
	if !found {
		return nil
	}
	return g.printKVs([]*messages.KeyValue{{Key: key, Value: value}}, keysOnly, pvo)
}

func (g *globals) printKVs(kvs []*messages.KeyValue, keysOnly, pvo bool) error {
	if g.json() {
		out := rangeJSON{KVs: make([]kvJSON, 0, len(kvs)), Count: len(kvs)}
		for _, e := range kvs {
			j := kvJSON{Key: g.text(e.GetKey())}
			if !keysOnly {
				v := g.text(e.GetValue())
				j.Value = &v
			}
			out.KVs = append(out.KVs, j)
		}
		return g.printJSON(out)
	}
	var b strings.Builder
	for _, e := range kvs {
		if !pvo {
			b.WriteString(g.text(e.GetKey()))
			b.WriteByte('\n')
		}
		if !keysOnly {
			b.WriteString(g.text(e.GetValue()))
			b.WriteByte('\n')
		}
	}
	return g.printf("%s", b.String())
}

const delLong = `Delete a key, a range or a prefix and print the commit version:
  OK version N

  del KEY                  Delete
  del BEGIN [END] --range  ClearRange [BEGIN, END); no END (or "") is open
  del BEGIN END            the same as --range
  del PREFIX --prefix      ClearRange of every key starting with PREFIX

Deleting a missing key is not an error.
JSON (-w json): {"version": N}`

func newDelCommand(g *globals) *cobra.Command {
	var (
		cf              string
		isRange, prefix bool
	)
	cmd := &cobra.Command{
		Use:   "del KEY [END]",
		Short: "Delete a key, a range or a prefix",
		Long:  delLong,
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				isRange = true
			}
			if prefix && isRange {
				return usageErr("--prefix takes one argument and excludes --range")
			}
			begin, err := g.bytes("key", args[0])
			if err != nil {
				return err
			}
			var version uint64
			if !isRange && !prefix {
				var resp *messages.DeleteResponse
				resp, err = do[*messages.DeleteResponse](g, cmd, &messages.DeleteRequest{ColumnFamily: cf, Key: begin})
				version = resp.GetVersion()
			} else {
				var end []byte
				if prefix {
					end = prefixEnd(begin)
				} else if len(args) == 2 {
					if end, err = g.bytes("range end", args[1]); err != nil {
						return err
					}
				}
				var resp *messages.ClearRangeResponse
				resp, err = do[*messages.ClearRangeResponse](g, cmd, &messages.ClearRangeRequest{ColumnFamily: cf, Begin: begin, End: end})
				version = resp.GetVersion()
			}
			if err != nil {
				return err
			}
			return g.printVersion(version)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cf, "cf", "", "column family (default: default)")
	f.BoolVar(&isRange, "range", false, "clear the range [BEGIN, END)")
	f.BoolVar(&prefix, "prefix", false, "clear the keys starting with KEY")
	return cmd
}

const readVersionLong = `Print the latest committed version (linearizable):
  N
JSON (-w json): {"version": N}`

func newReadVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "read-version",
		Short: "Print the latest committed version",
		Long:  readVersionLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := do[*messages.GetReadVersionResponse](g, cmd, &messages.GetReadVersionRequest{})
			if err != nil {
				return err
			}
			v := resp.GetVersion()
			if g.json() {
				return g.printJSON(versionResult{Version: v})
			}
			return g.printf("%d\n", v)
		},
	}
}
