package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/actorkv/actorkv/actors/replica"
	"github.com/actorkv/actorkv/kvclient"
)

// TLS is the [tls] section: one CA, and this process's certificate and
// key, for the gRPC server and (in a cluster) mutual TLS between the Raft
// transports of the processes. Off while cert is empty.
type TLS struct {
	// CA is the PEM file of the certificate authority that signs every
	// process's and every client's certificate.
	CA string `toml:"ca"`
	// Cert and Key are this process's certificate and private key (PEM).
	// The certificate must be valid for the host of its gRPC address and
	// of its Raft address, for server and client authentication.
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// RequireClientCert refuses gRPC clients without a certificate signed by
	// the CA. Without it, a client may still present one: its subject is
	// then its identity, and others are anonymous.
	RequireClientCert bool `toml:"require_client_cert"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.Cert != "" }

// check validates the section: all three files, or none.
func (t TLS) check() (field, problem string) {
	switch {
	case !t.Enabled() && (t.CA != "" || t.Key != "" || t.RequireClientCert):
		return "tls.cert", "is empty, and TLS needs ca, cert and key"
	case t.Enabled() && (t.CA == "" || t.Key == ""):
		return "tls.ca", "TLS needs ca, cert and key"
	}
	return "", ""
}

// serverConfig is the gRPC server's TLS configuration.
func (t TLS) serverConfig() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("tls.cert, tls.key: %w", err)
	}
	pem, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("tls.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls.ca: no PEM certificate in %s", t.CA)
	}
	auth := tls.VerifyClientCertIfGiven
	if t.RequireClientCert {
		auth = tls.RequireAndVerifyClientCert
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: auth}, nil
}

// clientConfig is the TLS configuration this process dials other processes'
// gRPC servers with (a joining replica's membership lookup): its own
// certificate as the client's.
func (t TLS) clientConfig() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	return kvclient.TLSConfig(t.CA, t.Cert, t.Key, false)
}

// raftFiles are the files of the Raft transport's mutual TLS (nil: off).
func (t TLS) raftFiles() *replica.TLSFiles {
	if !t.Enabled() {
		return nil
	}
	return &replica.TLSFiles{CA: t.CA, Cert: t.Cert, Key: t.Key}
}

// peerIdentity is the identity of the gRPC caller of ctx: the subject of
// its verified client certificate ("CN=alice,O=ops"), or "" (anonymous).
func peerIdentity(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ""
	}
	return identityOf(info.State)
}

// identityOf is the identity of the peer of a TLS connection: the subject
// of its verified client certificate, or "" (anonymous).
func identityOf(state tls.ConnectionState) string {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return ""
	}
	return state.VerifiedChains[0][0].Subject.String()
}
