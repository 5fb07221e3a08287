package supervisor

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// TestRouterPID checks the router's PID is recognised as the router, and a
// replica's (whatever its name ends with) is not.
func TestRouterPID(t *testing.T) {
	sup := actor.NewPID("nonhost", "group-1")
	r := RouterPID(sup)
	if r.GetAddress() != sup.GetAddress() || r.GetId() != "group-1/"+RouterName {
		t.Fatalf("RouterPID(%s) = %s", sup, r)
	}
	if !isRouter(r) {
		t.Errorf("isRouter(%s) = false", r)
	}
	for _, id := range []string{"group-1/replica-0", "group-1/replica-router", "group-1", "router-x"} {
		if isRouter(actor.NewPID("nonhost", id)) {
			t.Errorf("isRouter(%s) = true", id)
		}
	}
}
