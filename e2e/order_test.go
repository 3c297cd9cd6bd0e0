package e2e

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// refuseOnce makes the broker hold the nth produce request that carries
// topic until release is closed, then refuse each of its partitions with
// code; every other request is served. refused reports whether it
// happened.
func (e *env) refuseOnce(topic string, nth int, release <-chan struct{}, code int16) (refused func() bool) {
	var mu sync.Mutex
	seen, done := 0, false
	c := e.kafka.Cluster
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kr.(*kmsg.ProduceRequest)
		carries := false
		for _, rt := range req.Topics {
			carries = carries || rt.Topic == topic
		}
		mu.Lock()
		if carries && !done {
			seen++
		}
		fire := carries && !done && seen == nth
		done = done || fire
		mu.Unlock()
		if !fire {
			return nil, nil, false
		}
		c.SleepControl(func() { <-release })
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				sp.BaseOffset = -1
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return func() bool {
		mu.Lock()
		defer mu.Unlock()
		return done
	}
}

// TestNoEventOvertakesOneKafkaRefused has the broker refuse the produce
// request of an event, with an error the producer does not retry, after
// holding it long enough for 4000 later events of 20 aggregates (the
// first one's among them) to queue behind it. tailbox restarts from its checkpoint by
// itself; a consumer that drops duplicates sees every event, in commit
// order per aggregate: no event of an aggregate first appears after a
// later one.
func TestNoEventOvertakesOneKafkaRefused(t *testing.T) {
	tests := []struct {
		name string
		code int16
	}{
		{"UNKNOWN_SERVER_ERROR leaves every aggregate in order", kerr.UnknownServerError.Code},
		{"OUT_OF_ORDER_SEQUENCE_NUMBER leaves every aggregate in order", kerr.OutOfOrderSequenceNumber.Code},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "envelope")
			const agg = "ordered"
			topic := "outbox.event." + agg
			release := make(chan struct{})
			var releaseOnce sync.Once
			t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
			refused := e.refuseOnce(topic, 1, release, tc.code)
			p := e.start()
			// The request of a first event is held until eight
			// transactions of 500 rows are committed and tailbox has had
			// time to read them, so that they queue behind it.
			first := ev{agg + "-first", "k00"}
			e.session("START TRANSACTION", e.insertOutbox(agg, first), "COMMIT")
			rows := append([]ev{first}, insertBig(t, e.db.Conn(t), e.dbn, agg, agg, 0, 4000)...)
			time.Sleep(200 * time.Millisecond)
			releaseOnce.Do(func() { close(release) })
			sentinels, sg := e.commitSentinels(agg, "k00")
			recs := e.settle(p, topic, sentinels, sg, 2*time.Minute)
			if !refused() {
				t.Fatalf("the broker refused no produce request of %s", topic)
			}
			dups := checkAtLeastOnce(t, recs, append(rows, sentinels...), nil)
			log := p.stderr.String()
			if !strings.Contains(log, "producer failed, restarting from the acknowledged checkpoint") {
				t.Errorf("the log does not show the restart after the refusal:\n%s", logTail(log))
			}
			t.Logf("%d records, %d sent again after the refusal", len(recs), dups)
			stopRunning(t, p)
		})
	}
}
