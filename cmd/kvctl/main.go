// Command kvctl is the command-line client of kvserver's gRPC API, modelled
// on etcdctl: put, get (point, range, prefix, snapshot), del, atomic commit,
// read-version, status, verify (replicas at the same applied index hold the
// same data), fault injection, and a cluster's membership (member list, add,
// remove, replace; move-leader), and backups (snapshot save, status,
// restore).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
)

func main() {
	// SIGINT and SIGTERM end a command's context: status --watch ends
	// cleanly, a request in flight is cancelled.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes of kvctl: one per class of failure, so that a script can tell
// what to do next (rootLong documents them).
const (
	exitOK = 0
	// exitError: any other failure (INTERNAL, CANCELLED, SESSION_EXPIRED).
	exitError = 1
	// exitUsage: the command itself is wrong and will fail again
	// (INVALID_ARGUMENT, usage errors, TOO_LARGE, UNKNOWN_COLUMN_FAMILY).
	exitUsage = 2
	// exitUnavailable: no endpoint served the command in time (UNAVAILABLE,
	// TIMEOUT); try again later. A write's outcome is unknown.
	exitUnavailable = 3
	// exitConflict: an atomic commit conflicted or its read version is too
	// old (CONFLICT, TRANSACTION_TOO_OLD); retry from a new read version.
	exitConflict = 4
	// exitRefused: the server refused the caller (PERMISSION_DENIED,
	// RESOURCE_EXHAUSTED).
	exitRefused = 5
	// exitMismatch: verify found replicas at one applied index with
	// different data, or snapshot save/restore found data whose digests
	// differ from the replica's (save) or the file's (restore).
	exitMismatch = 6
)

// run executes kvctl with args and returns its exit code; every failure is
// reported as exactly one line on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newRootCommand(stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, errorLine(err))
		return exitCode(err)
	}
	return exitOK
}

// mismatchError marks a failure whose cause is data that differs where it
// must not (exit code exitMismatch); it wraps the error it reports.
type mismatchError struct{ error }

func (e mismatchError) Unwrap() error { return e.error }

// exitCode is the exit code of a command that failed with err.
func exitCode(err error) int {
	if errors.As(err, new(mismatchError)) {
		return exitMismatch
	}
	code := messages.StatusCode_INVALID_ARGUMENT // cobra's usage errors carry no status
	if e := new(messages.Error); errors.As(err, &e) {
		code = e.Code
	}
	switch code {
	case messages.StatusCode_INVALID_ARGUMENT, messages.StatusCode_TOO_LARGE, messages.StatusCode_UNKNOWN_COLUMN_FAMILY:
		return exitUsage
	case messages.StatusCode_UNAVAILABLE, messages.StatusCode_TIMEOUT:
		return exitUnavailable
	case messages.StatusCode_CONFLICT, messages.StatusCode_TRANSACTION_TOO_OLD:
		return exitConflict
	case messages.StatusCode_PERMISSION_DENIED, messages.StatusCode_RESOURCE_EXHAUSTED:
		return exitRefused
	}
	return exitError
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

Every global flag not given on the command line is read from the environment
variable KVCTL_<FLAG> when it is set, as etcdctl reads ETCDCTL_*:
KVCTL_ENDPOINTS, KVCTL_PROTOCOL, KVCTL_TIMEOUT, KVCTL_WRITE_OUT, KVCTL_HEX, KVCTL_CACERT,
KVCTL_CERT, KVCTL_KEY, KVCTL_INSECURE_SKIP_TLS_VERIFY.

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

A failure prints exactly one line on stderr:
  kvctl: <CODE>: <message>
where CODE is the actorkv status code (INVALID_ARGUMENT, TOO_LARGE,
UNKNOWN_COLUMN_FAMILY, CONFLICT, TRANSACTION_TOO_OLD, UNAVAILABLE, TIMEOUT,
INTERNAL, CANCELLED, SESSION_EXPIRED, PERMISSION_DENIED, RESOURCE_EXHAUSTED);
usage errors are INVALID_ARGUMENT. The exit status tells the class:
  0  success
  1  any other failure (INTERNAL, CANCELLED, SESSION_EXPIRED: a write's
     outcome is unknown)
  2  the command is wrong and will fail again (usage errors, INVALID_ARGUMENT,
     TOO_LARGE, UNKNOWN_COLUMN_FAMILY)
  3  no endpoint served it in time (UNAVAILABLE, TIMEOUT): try again later; a
     write's outcome is unknown
  4  CONFLICT or TRANSACTION_TOO_OLD: retry from a new read version
  5  refused (PERMISSION_DENIED, RESOURCE_EXHAUSTED)
  6  data differs where it must not: verify found replicas at one applied
     index with different digests; snapshot save read entries that do not
     hash to the replica's digests, or snapshot restore left replicas whose
     digests differ from the file's (a damaged file is exit 2)`

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
			if err := flagsFromEnv(cmd.Root().PersistentFlags()); err != nil {
				return err
			}
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
	pf.StringSliceVar(&g.endpoints, "endpoints", []string{"127.0.0.1:7070"}, "server endpoints (host:port; gRPC, or Thrift with --protocol thrift), comma-separated, tried in order on UNAVAILABLE (status and verify ask them all)")
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
		newSnapshotCommand(g),
	)
	return root
}

// flagsFromEnv sets each global flag not given on the command line from
// the environment variable KVCTL_<FLAG> (upper case, "-" as "_"), as
// etcdctl reads ETCDCTL_*: KVCTL_ENDPOINTS, KVCTL_TIMEOUT, KVCTL_CACERT...
func flagsFromEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = usageErr("$%s: %v", name, serr)
			}
		}
	})
	return err
}

// envName is the environment variable of a global flag.
func envName(flag string) string {
	return "KVCTL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// usageErr is an INVALID_ARGUMENT error of kvctl's own checks.
func usageErr(format string, args ...any) error {
	return messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, format, args...)
}
