package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
)

// conns holds one gRPC connection per endpoint; grpc.NewClient connects on
// first use.
type conns []*grpc.ClientConn

func dial(g *globals) (conns, error) {
	tc, err := g.tlsConfig()
	if err != nil {
		return nil, err
	}
	cs := make(conns, 0, len(g.endpoints))
	for _, ep := range g.endpoints {
		cc, err := grpc.NewClient(ep,
			kvclient.Credentials(tc),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(messages.MaxResponseMessageBytes)),
			// Reconnect quickly to a restarting server: kvctl lives for
			// seconds, gRPC's default backoff starts at one.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: time.Second,
			}),
		)
		if err != nil {
			cs.close()
			return nil, usageErr("endpoint %q: %v", ep, err)
		}
		cs = append(cs, cc)
	}
	return cs, nil
}

func (cs conns) close() {
	for _, cc := range cs {
		_ = cc.Close()
	}
}

// transports returns one transport per endpoint over --protocol — a unary
// gRPC call, or a Thrift call (kvserver's server.thrift_listen) — and the
// function that closes them.
func (g *globals) transports() ([]kv.Transport, func(), error) {
	ts := make([]kv.Transport, len(g.endpoints))
	if g.protocol == protocolThrift {
		tc, err := g.tlsConfig()
		if err != nil {
			return nil, nil, err
		}
		clients := make([]*kvclient.ThriftClient, len(g.endpoints))
		for i, ep := range g.endpoints {
			clients[i] = kvclient.NewThriftClient(ep, kvclient.ThriftOptions{TLS: tc})
			ts[i] = clients[i]
		}
		return ts, func() {
			for _, c := range clients {
				c.Close()
			}
		}, nil
	}
	cs, err := dial(g)
	if err != nil {
		return nil, nil, err
	}
	for i, cc := range cs {
		ts[i] = kvclient.NewUnary(cc)
	}
	return ts, cs.close, nil
}

// do sends req to the endpoints through a kv.Client — actorkv's one
// request-id and retry policy — over kvclient.Endpoints of unary calls: an
// endpoint answering UNAVAILABLE or TIMEOUT passes the next attempt to the
// next endpoint, a write opens a session and keeps its request id across
// attempts, a snapshot read answered TRANSACTION_TOO_OLD is asked of the
// other endpoints. Everything ends within --timeout.
func do[T messages.Statused](g *globals, cmd *cobra.Command, req proto.Message) (T, error) {
	var zero T
	ts, closeAll, err := g.transports()
	if err != nil {
		return zero, err
	}
	defer closeAll()
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	r, err := kv.Call[T](ctx, kv.NewClient(kvclient.NewEndpoints(ts...), g.timeout).Do, req)
	if err != nil {
		return zero, gaveUp(ctx, err)
	}
	return r, nil
}

// gaveUp is err, said to be the last failure before --timeout when the
// time ran out.
func gaveUp(ctx context.Context, err error) error {
	d, ok := ctx.Deadline()
	if !ok || time.Now().Before(d) || !messages.IsRetryable(err) {
		return err
	}
	return &messages.Error{Code: messages.CodeOf(err), Message: fmt.Sprintf("no answer before the deadline (last: %v)", err)}
}
