package observe

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestSlogDurationsAreLoggedInMilliseconds(t *testing.T) {
	var buf bytes.Buffer
	NewSlogLogger(zerolog.New(&buf)).Warn("retrying", "wait", 1500*time.Millisecond, "attempt", 2)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	if line["wait_ms"] != 1500.0 || line["attempt"] != 2.0 || line["component"] != "go-mysql" {
		t.Errorf("line %v, want wait_ms 1500, attempt 2, component go-mysql", line)
	}
	if _, ok := line["wait"]; ok {
		t.Errorf("a duration without its unit: %v", line)
	}
}
