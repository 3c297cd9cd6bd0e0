package config

import (
	"strconv"
	"strings"
	"testing"
)

// DefaultServerID is stable: the examples its doc, the example config and
// the README give are what it returns, on every run.
func TestDefaultServerIDIsStableAndInItsRange(t *testing.T) {
	for name, want := range map[string]uint32{
		"shop-outbox": 1341551043, // DefaultServerID's doc, tailbox.example.yaml
		"orders":      1765852388, // DefaultServerID's doc, README
	} {
		if got := DefaultServerID(name); got != want {
			t.Errorf("DefaultServerID(%q) = %d, want %d", name, got, want)
		}
	}
	seen := map[uint32]string{}
	for i := range 10000 {
		name := "connector-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strconv.Itoa(i)
		id := DefaultServerID(name)
		if id < 1_000_000_000 || id > 1_999_999_999 {
			t.Fatalf("DefaultServerID(%q) = %d, outside 1000000000-1999999999", name, id)
		}
		if other, dup := seen[id]; dup {
			t.Fatalf("%q and %q both get %d", other, name, id)
		}
		seen[id] = name
	}
}

// Without source.server_id (or with 0) the id is derived from name; an
// explicit id wins.
func TestServerIDDefaultsToTheNamesAndAnExplicitOneWins(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want uint32
	}{
		{"absent: derived from the name", minimal, DefaultServerID("shop-outbox")},
		{"0: derived from the name", strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  server_id: 0\n", 1), DefaultServerID("shop-outbox")},
		{"another name: another id", strings.Replace(minimal, "name: shop-outbox", "name: orders", 1), DefaultServerID("orders")},
		{"explicit: kept", strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  server_id: 5401\n", 1), 5401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), nil, "")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if cfg.Source.ServerID != tt.want {
				t.Errorf("source.server_id = %d, want %d", cfg.Source.ServerID, tt.want)
			}
		})
	}
}
