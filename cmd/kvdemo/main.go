// Command kvdemo shows the replicated write path end to end: it spawns a
// three-replica group under a supervisor actor, writes keys through the
// group's PID, prints each replica's applied index and digest side by side,
// stops replica 2, writes more, restarts it and shows it caught up.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/actors"
	"github.com/actorkv/actorkv/messages"
)

func main() {
	if err := newCommand(os.Stdout).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kvdemo:", err)
		os.Exit(1)
	}
}

func newCommand(out io.Writer) *cobra.Command {
	var (
		dir      string
		keys     int
		more     int
		timeout  time.Duration
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "kvdemo",
		Short: "Demonstrate actorkv's replicated write path",
		Long: `kvdemo spawns a supervisor actor with three replica actors (each with its own
dragonboat NodeHost, executor actor and RocksDB under --dir/replica-N), writes
--keys keys as protobuf PutRequests to the group's PID, and prints every
replica's applied index and digest. It then stops replica 2, writes --more keys,
restarts replica 2 and shows that it caught up: equal applied indexes, equal
digests. The data stays in --dir; a second run continues from it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			return demo(ctx, out, log, dir, keys, more)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", "./data/demo", "directory of the group's replicas")
	fl.IntVar(&keys, "keys", 1000, "keys to write before stopping replica 2")
	fl.IntVar(&more, "more", 1000, "keys to write while replica 2 is stopped")
	fl.DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	fl.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

func demo(ctx context.Context, out io.Writer, log *slog.Logger, dir string, keys, more int) error {
	cfg := actors.DefaultConfig(dir)
	cfg.Logger = log
	g, err := actors.Start(cfg)
	if err != nil {
		return err
	}
	defer g.Stop()
	fmt.Fprintf(out, "spawned a supervisor with a router and 3 replicas under %s\n", dir)
	if err := errors.Join(g.WaitReady(ctx), g.WaitStarted(ctx)); err != nil {
		return err
	}
	// The supervisor hands leadership to the primary (replica 0) after the
	// first election; give it a moment, but the demo works with any leader.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_ = g.WaitLeader(wctx, 0)
	cancel()
	leader, term, _ := g.Leader()
	fmt.Fprintf(out, "replica %d leads (term %d)\n\n", leader, term)

	if err := write(ctx, g, "before", keys); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %d keys through the group's PID:\n", keys)
	if err := show(ctx, out, g); err != nil {
		return err
	}

	if err := g.StopReplica(ctx, 2); err != nil {
		return fmt.Errorf("stop replica 2: %w", err)
	}
	fmt.Fprintf(out, "\nstopped replica 2; writing %d more keys with a majority of two\n", more)
	if err := write(ctx, g, "during", more); err != nil {
		return err
	}
	if err := show(ctx, out, g); err != nil {
		return err
	}

	if err := g.StartReplica(ctx, 2, false); err != nil {
		return fmt.Errorf("restart replica 2: %w", err)
	}
	fmt.Fprintln(out, "\nrestarted replica 2; once it has caught up:")
	if err := show(ctx, out, g); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nall three replicas hold identical data: same applied index, same digest")
	return nil
}

// write puts n keys as protobuf PutRequests sent to the supervisor's PID,
// 32 at a time.
func write(ctx context.Context, g *actors.Group, phase string, n int) error {
	root := g.System().Root
	const window = 32
	for start := 0; start < n; start += window {
		var futures []func() error
		for i := start; i < min(start+window, n); i++ {
			req := &messages.PutRequest{
				Key:   fmt.Appendf(nil, "demo/%s/%06d", phase, i),
				Value: fmt.Appendf(nil, "value-%d", i),
			}
			f := root.RequestFuture(g.PID(), req, 10*time.Second)
			futures = append(futures, func() error {
				res, err := f.Result()
				if err != nil {
					return fmt.Errorf("put %s: %w", req.Key, err)
				}
				return res.(*messages.PutResponse).GetStatus().Err()
			})
		}
		for _, wait := range futures {
			if err := wait(); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// show prints the replicas once the running ones agree (followers apply a
// moment after the leader answers).
func show(ctx context.Context, out io.Writer, g *actors.Group) error {
	st, err := waitCaughtUp(ctx, g)
	if err != nil {
		return err
	}
	printStatus(out, st)
	return nil
}

func printStatus(out io.Writer, st *messages.StatusResponse) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "REPLICA\tRUNNING\tLEADER\tAPPLIED INDEX\tKEYS\tDIGEST")
	for _, r := range st.GetReplicas() {
		if !r.GetRunning() {
			fmt.Fprintf(w, "%d\tno\t\t\t\t(stopped)\n", r.GetReplicaId())
			continue
		}
		var n uint64
		for _, d := range r.GetDigests() {
			n += d.GetKeys()
		}
		lead := ""
		if r.GetIsLeader() {
			lead = "*"
		}
		fmt.Fprintf(w, "%d\tyes\t%s\t%d\t%d\t%s\n", r.GetReplicaId(), lead, r.GetAppliedIndex(), n, hex.EncodeToString(r.GetDigest())[:16])
	}
	w.Flush()
}

// waitCaughtUp polls the status until every running replica is at the same
// applied index with the same digest.
func waitCaughtUp(ctx context.Context, g *actors.Group) (*messages.StatusResponse, error) {
	for {
		st, err := g.Status(ctx, true)
		if err == nil && agree(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("replica 2 did not catch up: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func agree(st *messages.StatusResponse) bool {
	var first *messages.ReplicaStatus
	for _, r := range st.GetReplicas() {
		if !r.GetRunning() {
			continue
		}
		if first == nil {
			first = r
		} else if r.GetAppliedIndex() != first.GetAppliedIndex() || string(r.GetDigest()) != string(first.GetDigest()) {
			return false
		}
	}
	return first != nil
}
