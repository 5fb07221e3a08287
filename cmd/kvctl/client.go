package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/actorkv/actorkv/messages"
)

// client holds one connection per endpoint, dialled on first use.
type client struct {
	endpoints []string
	conns     []*grpc.ClientConn // by endpoint; nil until dialled
}

func newClient(endpoints []string) *client {
	return &client{endpoints: endpoints, conns: make([]*grpc.ClientConn, len(endpoints))}
}

func (c *client) close() {
	for _, cc := range c.conns {
		if cc != nil {
			_ = cc.Close()
		}
	}
}

func (c *client) kv(i int) (messages.KVClient, error) {
	if c.conns[i] == nil {
		cc, err := grpc.NewClient(c.endpoints[i],
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(messages.MaxResponseMessageBytes)),
			// Reconnect quickly to a restarting server: kvctl lives for
			// seconds, gRPC's default backoff starts at one.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: time.Second,
			}),
		)
		if err != nil {
			return nil, usageErr("endpoint %q: %v", c.endpoints[i], err)
		}
		c.conns[i] = cc
	}
	return messages.NewKVClient(c.conns[i]), nil
}

// do calls f until it succeeds or fails with a non-retryable error, or ctx
// ends. An endpoint answering UNAVAILABLE passes the call to the next one; a
// TIMEOUT the server returned before ctx's deadline is retried. When every
// endpoint failed, do waits briefly and starts over. f must send the same
// request (the same request id, for a write) on every attempt.
func (c *client) do(ctx context.Context, f func(context.Context, messages.KVClient) error) error {
	return c.doRound(ctx, false, f)
}

// doSnapshot is do for a snapshot read: an endpoint answering
// TRANSACTION_TOO_OLD passes the read to the next one too, since a process
// whose replica restarted or installed a snapshot since the version no longer
// holds the history another may still hold; the read fails TOO_OLD only when
// every endpoint that answered said so.
func (c *client) doSnapshot(ctx context.Context, f func(context.Context, messages.KVClient) error) error {
	return c.doRound(ctx, true, f)
}

func (c *client) doRound(ctx context.Context, tooOldElsewhere bool, f func(context.Context, messages.KVClient) error) error {
	return c.retry(ctx, func() (error, error) {
		var last, tooOld error
		for i := range c.endpoints {
			kv, err := c.kv(i)
			if err != nil {
				return nil, err
			}
			err = f(ctx, kv)
			if err == nil {
				return nil, nil
			}
			if ctx.Err() != nil {
				return nil, c.gaveUp(ctx, fmt.Errorf("%s: %w", c.endpoints[i], messages.FromGRPC(err)))
			}
			if tooOldElsewhere && messages.CodeOf(messages.FromGRPC(err)) == messages.StatusCode_TRANSACTION_TOO_OLD {
				tooOld = messages.FromGRPC(err)
				continue
			}
			if !retryable(err) {
				return nil, messages.FromGRPC(err)
			}
			last = fmt.Errorf("%s: %w", c.endpoints[i], messages.FromGRPC(err))
		}
		if last == nil {
			return nil, tooOld // every endpoint answered TOO_OLD
		}
		return last, nil
	})
}

// retry runs round until it returns no retryable failure: round returns the
// error to report if time runs out (nil: the round is over, with err as its
// outcome). Between rounds it waits, from 20 ms doubling to 500 ms, until
// ctx ends.
func (c *client) retry(ctx context.Context, round func() (retryable, err error)) error {
	wait := 20 * time.Millisecond
	for {
		last, err := round()
		if last == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return c.gaveUp(ctx, last)
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// retryable reports whether a gRPC error may be retried: the endpoint was
// unavailable, or the server's time for the call ran out.
func retryable(err error) bool {
	switch grpcstatus.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// gaveUp is the error of a call whose time ran out: the last failure's
// code, with the reason.
func (c *client) gaveUp(ctx context.Context, last error) error {
	code := messages.CodeOf(last)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && code != messages.StatusCode_UNAVAILABLE {
		code = messages.StatusCode_TIMEOUT
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		code = messages.StatusCode_CANCELLED
	}
	return &messages.Error{Code: code, Message: fmt.Sprintf("no answer before the deadline (last: %v)", last)}
}
