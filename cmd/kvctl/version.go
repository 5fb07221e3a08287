package main

import (
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/actorkv/actorkv/messages"
)

// version is kvctl's build: the module version, or the VCS revision of a
// development build.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
			v = s.Value
		}
	}
	return v
}

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kvctl's version and the API it speaks",
		Long: `Print kvctl's version (its module version, or the VCS revision it was built
from) and the gRPC API it speaks. It contacts no server.

JSON (-w json): {"kvctl": "...", "api": "actorkv.v1.KV"}`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			api := messages.KV_ServiceDesc.ServiceName
			if g.json() {
				return g.printJSON(map[string]string{"kvctl": version(), "api": api})
			}
			return g.printf("kvctl version: %s\nAPI: %s\n", version(), api)
		},
	}
}
