package tests

import (
	"context"
	"testing"

	"github.com/actorkv/actorkv/actorkvtest"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/messages"
	"github.com/actorkv/actorkv/storage/conformance"
)

// TestGroupConformance holds the replicated group (three in-process
// replicas, through the Client facade) to the same Database contract as the
// standalone engine: the suite runs unchanged.
func TestGroupConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB, cfg conformance.Config) kv.Database {
		c := actorkvtest.NewCluster(t, actorkvtest.WithColumnFamilies(cfg.ColumnFamilies...), actorkvtest.WithRetentionWindow(cfg.RetentionWindow), actorkvtest.WithMaxSessions(cfg.MaxSessions))
		return faultsAfterApply{Client: c.Client(), c: c}
	})
}

// faultsAfterApply is the group's Client for the conformance suite, whose
// fault cases inject storage errors for reads only. In the group a follower
// may still be applying the suite's last writes when the faults arrive, and
// a write that fails in storage stops its replica (fail-stop, tested in
// supervision_test.go); so before injecting errors it waits until every
// replica has applied everything.
type faultsAfterApply struct {
	*kv.Client
	c *actorkvtest.Cluster
}

func (d faultsAfterApply) SetFaultInjection(ctx context.Context, f *messages.FaultInjection, opts ...kv.Option) error {
	if (f.GetErrorRate() > 0 || f.GetFailAfterWrites() > 0) && ctx.Err() == nil {
		if _, err := d.c.Converged(ctx); err != nil {
			return messages.Errorf(messages.CodeOf(ctx.Err()), "before injecting faults: %v", err)
		}
	}
	return d.Client.SetFaultInjection(ctx, f, opts...)
}
