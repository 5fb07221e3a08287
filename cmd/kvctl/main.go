// Command kvctl is the command-line client of kvserver's gRPC API, modelled
// on etcdctl: put, get (point, range, prefix, snapshot), del, atomic commit,
// read-version, status, verify (replicas at the same applied index hold the
// same data), fault injection, and a cluster's membership (member list, add,
// remove, replace; move-leader).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes of kvctl.
const (
	exitOK    = 0
	exitError = 1
)

// run executes kvctl with args and returns its exit code; every failure is
// reported as exactly one line on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newRootCommand(stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, errorLine(err))
		return exitError
	}
	return exitOK
}

// errorLine formats err as the one line kvctl prints on failure:
// "kvctl: <CODE>: <message>". Errors that carry no status (cobra's usage
// errors) are INVALID_ARGUMENT.
func errorLine(err error) string {
	code, msg := messages.StatusCode_INVALID_ARGUMENT, err.Error()
	var e *messages.Error
	if errors.As(err, &e) {
		code = e.Code
		msg = e.Error()
		// The server's messages start with the sentinel's text, which the
		// code already says.
		if s := code.Sentinel(); s != nil {
			msg = strings.TrimPrefix(msg, s.Error()+": ")
		}
	}
	msg = strings.Join(strings.Fields(msg), " ")
	return fmt.Sprintf("kvctl: %s: %s", code, msg)
}

// globals are the flags every command shares, and where it writes.
type globals struct {
	endpoints []string      // server addresses, tried in order
	protocol  string        // protocolGRPC or protocolThrift
	timeout   time.Duration // bounds each command, retries included
	writeOut  string        // "table" or "json"
	hex       bool          // keys and values are hex
	stdout    io.Writer     // command output; run prints the error line
	// TLS (etcdctl's flags): the CA that signed the servers' certificates,
	// this client's certificate and key (its identity), and whether to
	// accept any server certificate.
	cacert, cert, key string
	skipVerify        bool
}

// The protocols of --protocol.
const (
	protocolGRPC   = "grpc"
	protocolThrift = "thrift"
)

// tlsConfig is the TLS of the connections: nil (plaintext) unless a TLS
// flag was given.
func (g *globals) tlsConfig() (*tls.Config, error) {
	if g.cacert == "" && g.cert == "" && g.key == "" && !g.skipVerify {
		return nil, nil
	}
	tc, err := kvclient.TLSConfig(g.cacert, g.cert, g.key, g.skipVerify)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return tc, nil
}

const rootLong = `kvctl talks to kvserver over gRPC, or with --protocol thrift over its Thrift
front end (server.thrift_listen; --endpoints then name Thrift addresses).
Every command works over either.

Keys and values are UTF-8 strings as typed; with --hex they are hex on input
and printed as hex. Output is plain text ("-w table", the default) or one JSON
object per command ("-w json", shapes in each command's help).

Endpoints are tried in order: a call that gets UNAVAILABLE moves on to the
next one. status and verify instead ask every endpoint and merge the replicas
they report by id, so with the endpoints of every process of a cluster they
show (and compare) every replica. Every call (and its retries) must finish within --timeout. Writes
open a session first (one more round trip) and carry its request id (the
session's client id, seq 1); they are retried with the SAME id on UNAVAILABLE
or TIMEOUT until --timeout, so a retried write is applied at most once. If the
server has forgotten the session (limits.max_sessions, limits.session_ttl)
before the write's only attempt reached it, the write was not applied and
goes again under a new session; after more attempts it fails SESSION_EXPIRED,
its outcome unknown.

Exit status: 0 on success; 1 on any failure (a usage error, an error from the
server, a conflict, a verify mismatch), with exactly one line on stderr:
  kvctl: <CODE>: <message>
where CODE is the actorkv status code (INVALID_ARGUMENT, TOO_LARGE,
UNKNOWN_COLUMN_FAMILY, CONFLICT, TRANSACTION_TOO_OLD, UNAVAILABLE, TIMEOUT,
INTERNAL, CANCELLED, SESSION_EXPIRED, PERMISSION_DENIED, RESOURCE_EXHAUSTED). Usage errors are
INVALID_ARGUMENT.`

// newRootCommand builds kvctl's command tree writing to stdout and stderr;
// it holds no global state, so tests run it in process.
func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout}
	root := &cobra.Command{
		Use:           "kvctl",
		Short:         "A command-line client of kvserver",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch g.writeOut {
			case "table", "json":
			default:
				return usageErr("--write-out %q is not table or json", g.writeOut)
			}
			switch g.protocol {
			case protocolGRPC, protocolThrift:
			default:
				return usageErr("--protocol %q is not grpc or thrift", g.protocol)
			}
			if g.timeout <= 0 {
				return usageErr("--timeout must be positive, got %v", g.timeout)
			}
			if env := os.Getenv("ACTORKV_ENDPOINTS"); env != "" && !cmd.Flags().Changed("endpoints") {
				g.endpoints = strings.Split(env, ",") // as etcdctl's ETCDCTL_ENDPOINTS
			}
			var eps []string
			for _, e := range g.endpoints {
				if e = strings.TrimSpace(e); e != "" {
					eps = append(eps, e)
				}
			}
			if len(eps) == 0 {
				return usageErr("--endpoints is empty")
			}
			g.endpoints = eps
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr("%v", err) })
	pf := root.PersistentFlags()
	pf.StringSliceVar(&g.endpoints, "endpoints", []string{"127.0.0.1:7070"}, "server endpoints (host:port; gRPC, or Thrift with --protocol thrift), comma-separated, tried in order on UNAVAILABLE (status and verify ask them all); default from $ACTORKV_ENDPOINTS when set")
	pf.StringVar(&g.protocol, "protocol", protocolGRPC, "how to reach the endpoints: grpc (server.listen) or thrift (server.thrift_listen)")
	pf.DurationVar(&g.timeout, "timeout", 5*time.Second, "time limit of each command, retries included")
	pf.StringVarP(&g.writeOut, "write-out", "w", "table", "output format: table (plain text) or json")
	pf.BoolVar(&g.hex, "hex", false, "keys and values are hex on input and output")
	pf.StringVar(&g.cacert, "cacert", "", "verify the servers' TLS certificates with this CA (PEM); any TLS flag turns TLS on")
	pf.StringVar(&g.cert, "cert", "", "this client's TLS certificate (PEM): its subject is the client's identity")
	pf.StringVar(&g.key, "key", "", "the private key of --cert (PEM)")
	pf.BoolVar(&g.skipVerify, "insecure-skip-tls-verify", false, "TLS without checking the servers' certificates (encrypted, to whoever answers)")
	root.AddCommand(
		newPutCommand(g),
		newGetCommand(g),
		newDelCommand(g),
		newCommitCommand(g),
		newReadVersionCommand(g),
		newStatusCommand(g),
		newVerifyCommand(g),
		newFaultCommand(g),
		newMemberCommand(g),
		newMoveLeaderCommand(g),
		newVersionCommand(g),
		newEndpointCommand(g),
	)
	return root
}

// usageErr is an INVALID_ARGUMENT error of kvctl's own checks.
func usageErr(format string, args ...any) error {
	return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, format, args...)
}
