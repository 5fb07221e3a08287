// Command certs writes the certificates of a local actorkv cluster with TLS
// (make certs): a CA (ca.pem), one certificate per node (node-N.pem and
// node-N-key.pem, valid for --hosts, for gRPC and mutual-TLS Raft) and one
// per client (client-NAME.pem and client-NAME-key.pem, identity "CN=NAME").
// The CA's key is not kept: make new ones to add a node or client.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/actorkv/actorkv/deploy/certs"
)

func main() {
	dir := flag.String("dir", "certs", "directory to write into (created)")
	hosts := flag.String("hosts", "127.0.0.1,localhost", "comma-separated IP addresses and DNS names every node's certificate is valid for")
	nodes := flag.Int("nodes", 3, "node certificates to make (node-0 ... node-N-1)")
	clients := flag.String("clients", "admin,client", "comma-separated client identities (CN) to make certificates for")
	flag.Parse()
	if err := run(*dir, strings.Split(*hosts, ","), *nodes, strings.Split(*clients, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "certs:", err)
		os.Exit(1)
	}
}

func run(dir string, hosts []string, nodes int, clients []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ca, err := certs.NewCA("actorkv local CA")
	if err != nil {
		return err
	}
	path, err := ca.WriteCA(dir)
	if err != nil {
		return err
	}
	fmt.Println(path)
	for i := range nodes {
		p, err := ca.Node(fmt.Sprintf("node-%d", i), hosts)
		if err != nil {
			return err
		}
		cert, key, err := p.Write(dir, fmt.Sprintf("node-%d", i))
		if err != nil {
			return err
		}
		fmt.Println(cert, key)
	}
	for _, c := range clients {
		if c == "" {
			continue
		}
		p, err := ca.Client(c)
		if err != nil {
			return err
		}
		cert, key, err := p.Write(dir, "client-"+c)
		if err != nil {
			return err
		}
		fmt.Printf("%s %s (identity CN=%s)\n", cert, key, c)
	}
	return nil
}
