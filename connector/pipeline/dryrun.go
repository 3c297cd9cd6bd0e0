package pipeline

import (
	"encoding/json"
	"io"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

// dryRunRecord is one line of --dry-run output.
type dryRunRecord struct {
	Topic     string            `json:"topic"`
	Key       *string           `json:"key"`
	Headers   map[string]string `json:"headers"`
	Timestamp string            `json:"timestamp"`
	Value     json.RawMessage   `json:"value"`
}

func printRecord(w io.Writer, rec *kafka.Record) error {
	r := dryRunRecord{Topic: rec.Topic, Headers: map[string]string{}, Timestamp: rec.Timestamp.UTC().Format(time.RFC3339Nano)}
	if rec.Key != nil {
		k := string(rec.Key)
		r.Key = &k
	}
	for _, h := range rec.Headers {
		r.Headers[h.Key] = string(h.Value)
	}
	switch {
	case rec.Value == nil:
		r.Value = json.RawMessage("null")
	case json.Valid(rec.Value):
		r.Value = rec.Value
	default:
		b, _ := json.Marshal(string(rec.Value))
		r.Value = b
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
