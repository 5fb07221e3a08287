package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/actorkv/actorkv/actors/replica"
	"github.com/actorkv/actorkv/kv"
	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
)

// joinTimeout bounds the membership lookup of a joining replica: the
// cluster may be electing a leader.
const joinTimeout = 30 * time.Second

// joinNode asks a running cluster, through the gRPC endpoints of its
// processes, which node its membership holds for replica id, and checks
// that the member's Raft address is address: the node this process's
// replica joins as.
func joinNode(endpoints []string, id uint32, address string, t TLS) (uint64, error) {
	tc, err := t.clientConfig()
	if err != nil {
		return 0, err
	}
	ts := make([]kv.Transport, 0, len(endpoints))
	for _, ep := range endpoints {
		cc, err := grpc.NewClient(ep, kvclient.Credentials(tc))
		if err != nil {
			return 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT, "deployment.join: %q: %v", ep, err)
		}
		defer cc.Close()
		ts = append(ts, kvclient.NewUnary(cc))
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	resp, err := kv.Call[*messages.MemberListResponse](ctx, kv.NewClient(kvclient.NewEndpoints(ts...), 5*time.Second).Do, &messages.MemberListRequest{})
	if err != nil {
		return 0, fmt.Errorf("join: read the membership of the cluster at %s: %w", strings.Join(endpoints, ","), err)
	}
	var listed []string
	for _, m := range resp.GetMembers() {
		listed = append(listed, fmt.Sprintf("%d at %s", m.GetReplicaId(), m.GetRaftAddress()))
		if m.GetReplicaId() != id {
			continue
		}
		if m.GetRaftAddress() != address {
			return 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
				"join: replica %d is a member at %s, and this process's Raft address is %s", id, m.GetRaftAddress(), address)
		}
		if replica.GenerationOf(m.GetNodeId()) == 0 {
			// One of the nodes the cluster started with (added and replacing
			// nodes are of generation 1 or later): it has run, and the
			// others counted its log in their majorities. On an empty
			// directory it must come back as a new node.
			return 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
				"join: replica %d is a member as node %d, one of the nodes the cluster started with: a node that ran cannot join again on an empty directory; replace it first: kvctl --endpoints %s member replace %d %s",
				id, m.GetNodeId(), strings.Join(endpoints, ","), id, address)
		}
		return m.GetNodeId(), nil
	}
	return 0, messages.Errorf(messages.StatusCode_INVALID_ARGUMENT,
		"join: replica %d is not a member of the cluster (members: %s): add it first: kvctl --endpoints %s member add %d %s",
		id, strings.Join(listed, ", "), strings.Join(endpoints, ","), id, address)
}

// joinedNode is the node a replica that joined before restarts as: its
// stored generation's.
func joinedNode(dir string, id uint32) (uint64, error) {
	g, err := replica.ReadGeneration(dir)
	if err != nil {
		return 0, err
	}
	return replica.NodeID(id, g), nil
}
