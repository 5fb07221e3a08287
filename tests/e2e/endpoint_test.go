package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestEndpointCommands: kvctl endpoint health and endpoint status ask each
// process of the cluster on its own; a killed process shows as unhealthy
// and unreachable, and the commands fail.
func TestEndpointCommands(t *testing.T) {
	c := startCluster(t)
	eps := c.endpoints()
	r := kvctl(t, "", "--endpoints", eps, "--timeout", "10s", "endpoint", "health")
	if r.code != 0 || strings.Count(r.stdout, "is healthy: linearizable read in ") != 3 {
		t.Fatalf("endpoint health: %v", r)
	}
	r = kvctl(t, "", "--endpoints", eps, "--timeout", "10s", "endpoint", "status")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 4 || strings.Count(r.stdout, "*") != 1 {
		t.Fatalf("endpoint status: %v", r)
	}
	for _, n := range c.nodes {
		if !strings.Contains(r.stdout, fmt.Sprintf("%s %-3d", padEndpoint(n.grpc), n.id)) {
			t.Fatalf("endpoint status does not show replica %d at %s:\n%s", n.id, n.grpc, r.stdout)
		}
	}
	dead := c.nodes[2]
	dead.kill()
	r = kvctl(t, "", "--endpoints", eps, "--timeout", "2s", "endpoint", "health")
	checkFailure(t, r, "UNAVAILABLE", []string{"endpoint", "health"})
	if !strings.Contains(r.stdout, dead.grpc+" is unhealthy: ") || strings.Count(r.stdout, "is healthy") != 2 {
		t.Fatalf("endpoint health with node 2 down: %v", r)
	}
	r = kvctl(t, "", "--endpoints", eps, "--timeout", "2s", "endpoint", "status")
	checkFailure(t, r, "UNAVAILABLE", []string{"endpoint", "status"})
	if !strings.Contains(r.stdout, "unreachable: ") {
		t.Fatalf("endpoint status with node 2 down: %v", r)
	}
}

func padEndpoint(s string) string { return fmt.Sprintf("%-22s", s) }
