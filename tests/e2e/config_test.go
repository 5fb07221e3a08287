package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/actorkv/actorkv/server"
)

// TestPrintConfig: kvserver --print-config prints the embedded default, the
// commented TOML that docs/CONFIG.md shows, and it parses back to the
// default configuration.
func TestPrintConfig(t *testing.T) {
	out, err := exec.Command(filepath.Join(binDir, "kvserver"), "--print-config").Output()
	if err != nil {
		t.Fatalf("kvserver --print-config: %v", err)
	}
	if string(out) != server.DefaultTOML {
		t.Fatalf("kvserver --print-config printed something else than server.DefaultTOML:\n%s", out)
	}
	path := filepath.Join(t.TempDir(), "kvserver.toml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := server.ReadConfig(path); err != nil {
		t.Fatalf("the printed configuration does not read back: %v", err)
	}
}
