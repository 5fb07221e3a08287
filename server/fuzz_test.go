package server

import (
	"context"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// FuzzParseConfig: any TOML is either refused with INVALID_ARGUMENT naming
// what is wrong, or gives a configuration that validates.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(designExample))
	if b, err := os.ReadFile("../README.md"); err == nil {
		f.Add(b) // not TOML: refused
	}
	f.Add([]byte("[server]\nadmin = true\nadmins = [\"CN=a\"]\n[tls]\ncert = \"c\"\n"))
	f.Add([]byte("[raft]\nrtt = \"-5ms\"\n"))
	f.Add([]byte("[limits]\nmax_value_size = 99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if messages.CodeOf(err) != messages.StatusCode_INVALID_ARGUMENT {
				t.Fatalf("refused with %v, want INVALID_ARGUMENT", err)
			}
			return
		}
		// What the server accepts, the engine it configures accepts too.
		if err := cfg.StorageConfig(t.TempDir()).Validate(); err != nil {
			t.Fatalf("ParseConfig accepted a configuration whose storage configuration does not validate: %v", err)
		}
	})
}

// answering is a backend that answers every request at once.
type answering struct{}

func (answering) Submit(req proto.Message, _ time.Time, _ <-chan struct{}, done func(messages.Statused, error)) {
	done(messages.OpOf(req).Response(nil), nil)
}

// FuzzBatchCall feeds arbitrary bytes to a Batch stream's path as one call:
// a message that does not decode is a malformed stream (the gRPC codec
// refuses it); one that decodes is answered exactly once, with its own id,
// OK or with a status — never a panic, never silence.
func FuzzBatchCall(f *testing.F) {
	for _, req := range []proto.Message{
		&messages.PutRequest{Key: []byte("k"), Value: []byte("v")},
		&messages.GetRangeRequest{Begin: []byte("a"), End: []byte("b"), Limit: 10},
		&messages.StatusRequest{WithDigests: true},
		&messages.AtomicCommitRequest{Commit: &messages.AtomicCommit{ReadVersion: 1}},
	} {
		c, _ := messages.NewCall(7, req)
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	core := NewCore(answering{}, time.Second, nil).WithLimits(DefaultConfig().Server.Limits())
	f.Fuzz(func(t *testing.T, data []byte) {
		var call messages.Call
		if proto.Unmarshal(data, &call) != nil {
			return
		}
		replies := 0
		var got *messages.Reply
		core.Start(context.Background(), &call, func(r *messages.Reply, sent func()) { replies++; got = r; giveBack(sent) })
		if replies != 1 || got.GetId() != call.GetId() {
			t.Fatalf("call %d answered %d times (last %v)", call.GetId(), replies, got)
		}
	})
}
