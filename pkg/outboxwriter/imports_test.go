package outboxwriter

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsOnlyTheStandardLibrary keeps the package free of dependencies:
// a service that imports it compiles nothing of tailbox's runtime.
func TestImportsOnlyTheStandardLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	if deps := strings.Fields(string(out)); len(deps) != 1 || deps[0] != "github.com/tailbox-cdc/tailbox/pkg/outboxwriter" {
		t.Errorf("the package depends on %q, want the standard library only", deps)
	}
}
