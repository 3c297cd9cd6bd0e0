package e2e

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// refuseTxnInits makes the broker answer every transactional InitProducerId
// after the first allowed ones with code, while refuse holds; the
// idempotent producer of the checkpoint store is left alone. It returns the
// count of refused requests.
func (e *env) refuseTxnInits(allowed int32, code int16, refuse *atomic.Bool) *atomic.Int32 {
	var inits, refused atomic.Int32
	e.kafka.Cluster.ControlKey(int16(kmsg.InitProducerID), func(r kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.Cluster.KeepControl()
		req := r.(*kmsg.InitProducerIDRequest)
		if req.TransactionalID == nil || !refuse.Load() || inits.Add(1) <= allowed {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
		resp.ErrorCode = code
		refused.Add(1)
		return resp, nil, true
	})
	return &refused
}

// An exactly_once connector without a stored checkpoint resolves its start
// (start.from latest) once its producer has fenced the former one; when
// the run then fails before its stream started, the next run must resume
// from that start and publish what was committed in between, as
// at_least_once does (the README's start rules), instead of resolving
// latest again.
func TestExactlyOnceFirstStartKeepsItsStartPoint(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int16
		stop bool // SIGTERM while the run retries; else it exits 1 by itself
	}{
		{name: "the transactional producer is refused for good and the run exits 1",
			code: kerr.TransactionalIDAuthorizationFailed.Code},
		{name: "the transactional producer is retried and the run is stopped",
			code: kerr.ConcurrentTransactions.Code, stop: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "envelope")
			e.useKafkaStore(false)
			e.write(1) // before the first start: latest is after it
			var refuse atomic.Bool
			refuse.Store(true)
			// The first transactional producer is the fence before the
			// checkpoint is loaded; the session's own is refused.
			refused := e.refuseTxnInits(1, tc.code, &refuse)
			p := e.startUnchecked()
			if tc.stop {
				waitForProc(t, "a refused InitProducerId", func() bool { return refused.Load() > 0 }, p)
				if code := p.stop(t); code != 0 {
					t.Fatalf("exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
				}
			} else if code := p.wait(t); code != 1 {
				t.Fatalf("exit code %d, want 1:\n%s", code, logTail(p.stderr.String()))
			}
			if !strings.Contains(p.stderr.String(), `"message":"starting"`) || refused.Load() == 0 {
				t.Fatalf("the run did not resolve its start and then meet a refused InitProducerId (%d refused):\n%s", refused.Load(), logTail(p.stderr.String()))
			}
			e.write(2) // while tailbox is down, after its start point
			refuse.Store(false)
			e.expectEvents([]int{2})
		})
	}
}
