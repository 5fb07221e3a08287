package kvclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLSConfig is the client side of kvserver's TLS (etcdctl's --cacert,
// --cert, --key): ca, when given, is the PEM file of the CA that signed the
// server's certificate (else the system's roots); cert and key, when given,
// are the client's certificate and key, whose subject is its identity on a
// server that verifies client certificates. skipVerify accepts any server
// certificate (etcdctl's --insecure-skip-tls-verify): the connection is
// encrypted, but to whom is unknown.
func TLSConfig(ca, cert, key string, skipVerify bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify} //nolint:gosec // only when asked
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", ca)
		}
		cfg.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("a client certificate needs both its certificate and its key (--cert and --key)")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Credentials is the dial option of cfg: TLS, or plaintext when cfg is nil.
func Credentials(cfg *tls.Config) grpc.DialOption {
	if cfg == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg))
}
