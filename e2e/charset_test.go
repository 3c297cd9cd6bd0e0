package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestEuckrOutboxArrivesAsUTF8: an outbox table in euckr (Korean text in
// the key, the type and the payload) reaches Kafka in UTF-8: key, type
// header and the envelope's fields.
func TestEuckrOutboxArrivesAsUTF8(t *testing.T) {
	e := newEnv(t, "envelope")
	e.db.Exec(t, "DROP TABLE "+e.dbn+".outbox")
	e.db.Exec(t, fmt.Sprintf(`CREATE TABLE %s.outbox (
  id            CHAR(36) NOT NULL PRIMARY KEY,
  aggregatetype VARCHAR(255) NOT NULL,
  aggregateid   VARCHAR(255) NOT NULL,
  type          VARCHAR(255) NOT NULL,
  payload       LONGTEXT,
  created_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) DEFAULT CHARSET=euckr`, e.dbn))
	p := e.start()

	const (
		id      = "00000000-0000-0000-0000-00000000e0c1"
		key     = "홍길동"
		typ     = "회원가입"
		payload = `{"name":"홍길동","memo":"안녕하세요"}`
	)
	c := e.db.Conn(t)
	for _, s := range []string{"SET NAMES utf8mb4", "BEGIN", e.outboxInsert(id, "member", key, typ, payload), "COMMIT"} {
		if _, err := c.Execute(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	// The table really holds EUC-KR: 홍길동 is C8AB B1E6 B5BF there.
	r := e.db.Exec(t, fmt.Sprintf("SELECT HEX(aggregateid) FROM %s.outbox", e.dbn))
	if h, _ := r.GetString(0, 0); h != "C8ABB1E6B5BF" {
		t.Fatalf("aggregateid is stored as %s, want EUC-KR C8ABB1E6B5BF", h)
	}

	recs := e.kafka.Consume(t, []string{"outbox.event.member"}, 1, 30*time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
	}
	rec := recs[0]
	if string(rec.Key) != key {
		t.Errorf("key %q (% x), want %q", rec.Key, rec.Key, key)
	}
	if h, _ := header(rec, "type"); h != typ {
		t.Errorf("type header %q, want %q", h, typ)
	}
	var env struct {
		ID, Type, AggregateID string
		Payload               json.RawMessage
	}
	if err := json.Unmarshal(rec.Value, &env); err != nil {
		t.Fatalf("envelope is not JSON: %v: %s", err, rec.Value)
	}
	if env.ID != id || env.Type != typ || env.AggregateID != key {
		t.Errorf("envelope id %q type %q aggregateId %q, want %q %q %q", env.ID, env.Type, env.AggregateID, id, typ, key)
	}
	if got := compactJSON(t, string(env.Payload)); got != compactJSON(t, payload) {
		t.Errorf("payload %s, want it embedded as %s", env.Payload, payload)
	}
}
