package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/messages"
)

// memberJSON is one member in -w json output.
type memberJSON struct {
	ID          uint32 `json:"id"`
	NodeID      uint64 `json:"node_id"`
	RaftAddress string `json:"raft_address"`
	Leader      bool   `json:"leader"`
}

func toMemberJSON(m *messages.Member) memberJSON {
	return memberJSON{ID: m.GetReplicaId(), NodeID: m.GetNodeId(), RaftAddress: m.GetRaftAddress(), Leader: m.GetLeader()}
}

func parseReplicaID(s string) (uint32, error) {
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil || id >= 1<<16 {
		return 0, usageErr("replica id %q is not a number below 65536", s)
	}
	return uint32(id), nil
}

func newMemberCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "List, add, remove and replace the members of a cluster",
		Long: `The members of a cluster (one replica per kvserver process) are its Raft
membership: each is a replica id with its node id and Raft address. Adding,
removing and replacing members and moving the leader are admin operations:
the server refuses them (PERMISSION_DENIED) unless it allows admin
operations (server.admin, kvserver --admin).

  kvctl member list
  kvctl member add ID RAFT_ADDRESS       then start the new process with --join
  kvctl member remove ID                 its process exits
  kvctl member replace ID RAFT_ADDRESS   a lost replica, anew on an empty directory

A change commits through Raft, so it needs a majority of the current members.
Add and remove are idempotent (adding a member at its address, or removing one
that is no member, changes nothing), so kvctl retries them safely. An
in-process group's membership is fixed: the server answers INVALID_ARGUMENT.
See docs/CLUSTER.md for the runbooks.`,
	}
	cmd.AddCommand(newMemberListCommand(g), newMemberAddCommand(g), newMemberRemoveCommand(g), newMemberReplaceCommand(g))
	return cmd
}

// members reads the membership.
func (g *globals) members(cmd *cobra.Command) ([]*messages.Member, error) {
	resp, err := do[*messages.MemberListResponse](g, cmd, &messages.MemberListRequest{})
	return resp.GetMembers(), err
}

func newMemberListCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the members",
		Long: `List the members of the cluster's Raft membership (a linearizable read of it),
by replica id, with the leader marked.

JSON (-w json): {"members": [{"id", "node_id", "raft_address", "leader"}]}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := g.members(cmd)
			if err != nil {
				return err
			}
			if g.writeOut == "json" {
				out := struct {
					Members []memberJSON `json:"members"`
				}{Members: []memberJSON{}}
				for _, m := range ms {
					out.Members = append(out.Members, toMemberJSON(m))
				}
				return g.printJSON(out)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "%-4s %-8s %-24s %s\n", "ID", "NODE", "RAFT ADDRESS", "LEADER")
			for _, m := range ms {
				lead := ""
				if m.GetLeader() {
					lead = "*"
				}
				fmt.Fprintf(&b, "%-4d %-8d %-24s %s\n", m.GetReplicaId(), m.GetNodeId(), m.GetRaftAddress(), lead)
			}
			return g.printf("%s", b.String())
		},
	}
}

func newMemberAddCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "add ID RAFT_ADDRESS",
		Short: "Add a replica to the membership",
		Long: `Add replica ID, whose process will listen for Raft at RAFT_ADDRESS, to the
membership. Then start that process on an empty directory with
--in-process=false --instance-id ID --raft-address RAFT_ADDRESS --join <the
gRPC endpoints of the cluster>: it joins and catches up from the leader. Until
it runs, it counts as a member that is down (with three members, adding a
fourth raises the majority to three).

Prints "Member ID added as node N at RAFT_ADDRESS" and the start command.
JSON (-w json): {"member": {"id", "node_id", "raft_address", "leader"}}.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseReplicaID(args[0])
			if err != nil {
				return err
			}
			resp, err := do[*messages.MemberAddResponse](g, cmd, &messages.MemberAddRequest{ReplicaId: id, RaftAddress: args[1]})
			if err != nil {
				return err
			}
			if g.writeOut == "json" {
				return g.printJSON(struct {
					Member memberJSON `json:"member"`
				}{toMemberJSON(resp.GetMember())})
			}
			m := resp.GetMember()
			return g.printf("Member %d added as node %d at %s\nstart it: kvserver --mode replicated --in-process=false --instance-id %d --raft-address %s --join %s ...\n",
				m.GetReplicaId(), m.GetNodeId(), m.GetRaftAddress(), m.GetReplicaId(), m.GetRaftAddress(), strings.Join(g.endpoints, ","))
		},
	}
}

func newMemberRemoveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a replica from the membership",
		Long: `Remove replica ID from the membership. Its process, if it runs, stops serving
and exits (0); its data stays on disk, but it can never rejoin under its node
id: to bring it back, add it again (a new node id) on an empty directory.

Prints "Member ID removed". JSON (-w json): {"ok": true}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseReplicaID(args[0])
			if err != nil {
				return err
			}
			if _, err := do[*messages.MemberRemoveResponse](g, cmd, &messages.MemberRemoveRequest{ReplicaId: id}); err != nil {
				return err
			}
			if g.writeOut == "json" {
				return g.printJSON(map[string]bool{"ok": true})
			}
			return g.printf("Member %d removed\n", id)
		},
	}
}

func newMemberReplaceCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "replace ID RAFT_ADDRESS",
		Short: "Replace a replica that lost its data (or its host)",
		Long: `Replace replica ID's current node with a node of its next generation at
RAFT_ADDRESS (the old address, or a new host's), in one membership change
after another: the old node is removed, the new one added. Then start the
replica's process on an EMPTY directory with --join: it catches up from the
leader (through a snapshot once the log is compacted). A replica that lost its
Raft log must never come back under its old node id; this is how it comes back.

kvctl reads the membership first and names the node it replaces, so a retry
after a timeout does not replace the new node again.

Prints "Member ID replaced: node OLD -> node NEW at RAFT_ADDRESS" and the start
command. JSON (-w json): {"member": {...}, "replaced_node_id": OLD}.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseReplicaID(args[0])
			if err != nil {
				return err
			}
			ms, err := g.members(cmd)
			if err != nil {
				return err
			}
			var old uint64
			for _, m := range ms {
				if m.GetReplicaId() == id {
					old = m.GetNodeId()
				}
			}
			if old == 0 {
				return usageErr("replica %d is not a member (kvctl member list); add it instead", id)
			}
			resp, err := do[*messages.MemberReplaceResponse](g, cmd, &messages.MemberReplaceRequest{ReplicaId: id, NodeId: old, RaftAddress: args[1]})
			if err != nil {
				return err
			}
			m := resp.GetMember()
			if g.writeOut == "json" {
				return g.printJSON(struct {
					Member   memberJSON `json:"member"`
					Replaced uint64     `json:"replaced_node_id"`
				}{toMemberJSON(m), old})
			}
			return g.printf("Member %d replaced: node %d -> node %d at %s\nstart it on an empty directory: kvserver --mode replicated --in-process=false --instance-id %d --raft-address %s --join %s ...\n",
				id, old, m.GetNodeId(), m.GetRaftAddress(), id, m.GetRaftAddress(), strings.Join(g.endpoints, ","))
		},
	}
}

func newMoveLeaderCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "move-leader ID",
		Short: "Hand Raft leadership to a replica",
		Long: `Hand Raft leadership to replica ID and wait until it leads (within
--timeout: TIMEOUT otherwise; a replica that has not caught up cannot take the
lead). Writes in flight on the old leader end TIMEOUT, their outcome unknown,
and are retried by their clients with the same request id. It is an admin
operation (server.admin).

Prints "Leader moved to replica ID (term T)". JSON (-w json):
{"leader": ID, "term": T}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseReplicaID(args[0])
			if err != nil {
				return err
			}
			resp, err := do[*messages.MoveLeaderResponse](g, cmd, &messages.MoveLeaderRequest{ReplicaId: id})
			if err != nil {
				return err
			}
			if g.writeOut == "json" {
				return g.printJSON(struct {
					Leader uint32 `json:"leader"`
					Term   uint64 `json:"term"`
				}{id, resp.GetTerm()})
			}
			return g.printf("Leader moved to replica %d (term %d)\n", id, resp.GetTerm())
		},
	}
}
