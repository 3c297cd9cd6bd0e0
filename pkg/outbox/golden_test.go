package outbox

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// goldenOptions are the options of the golden tests for format f: a header
// column everywhere, and an envelope column where the format has one.
func goldenOptions(f Format) Options {
	o := Options{
		ConnectorName: "shop-outbox",
		Format:        f,
		Additional:    []Additional{{Column: "tenant", Placement: PlacementHeader, As: "tenantId"}},
	}
	if f != FormatDebezium {
		o.Additional = append(o.Additional, Additional{Column: "priority", Placement: PlacementEnvelope, As: "priority"})
	}
	return o
}

// render prints an event for a golden file: topic, key, timestamp, headers
// and the value as it is and, when it is JSON, indented.
func render(t *testing.T, f Format, r Result) []byte {
	t.Helper()
	var b bytes.Buffer
	ev := r.Event
	fmt.Fprintf(&b, "action: %s\n", r.Action)
	fmt.Fprintf(&b, "topic: %s\n", ev.Topic)
	fmt.Fprintf(&b, "key: %s\n", quoteOrNil(ev.Key))
	if ev.ExplicitPartition {
		fmt.Fprintf(&b, "partition: %d\n", ev.Partition)
	}
	fmt.Fprintf(&b, "timestamp: %s\n", ev.Timestamp.Format("2006-01-02T15:04:05.000000Z07:00"))
	fmt.Fprintf(&b, "id: %s\n", ev.ID)
	if r.Warning != "" {
		fmt.Fprintf(&b, "warning: %s\n", r.Warning)
	}
	b.WriteString("headers:\n")
	for _, h := range ev.Headers {
		fmt.Fprintf(&b, "  %s: %s\n", h.Key, quoteOrNil(h.Value))
	}
	b.WriteString("value:\n")
	switch {
	case ev.Value == nil:
		b.WriteString("<nil>\n")
	case f == FormatDebezium:
		b.Write(ev.Value)
		b.WriteByte('\n')
	default:
		b.Write(ev.Value)
		b.WriteString("\nvalue (indented):\n")
		if err := json.Indent(&b, ev.Value, "", "  "); err != nil {
			t.Fatalf("value is not valid JSON: %v\n%s", err, ev.Value)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func quoteOrNil(b []byte) string {
	if b == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", b)
}

func TestGolden(t *testing.T) {
	rows := []struct {
		name   string
		change func() *binlog.Change
	}{
		{"mariadb", mariaDBChange},
		{"mysql", mySQLChange},
	}
	for _, f := range []Format{FormatEnvelope, FormatDebezium, FormatCloudEvents} {
		for _, row := range rows {
			name := f.String() + "_" + row.name
			t.Run(name, func(t *testing.T) {
				tr := mustNew(t, goldenOptions(f))
				r, err := tr.Transform(row.change())
				if err != nil {
					t.Fatalf("Transform: %v", err)
				}
				if f != FormatDebezium && !json.Valid(r.Event.Value) {
					t.Fatalf("value is not valid JSON:\n%s", r.Event.Value)
				}
				got := render(t, f, r)
				path := filepath.Join("testdata", name+".golden")
				if *update {
					if err := os.MkdirAll("testdata", 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs (run go test -update after checking the change)\ngot:\n%s\nwant:\n%s", path, got, want)
				}
			})
		}
	}
}
