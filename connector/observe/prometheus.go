package observe

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// Descriptions of tailbox's own metrics.
var (
	descRowsRead = prometheus.NewDesc("tailbox_rows_read_total",
		"Row changes of captured tables read from the binlog, by table and op (insert, update, delete): inserts are events; updates follow outbox.on_update and deletes are ignored.",
		[]string{"table", "op"}, nil)
	descPublished = prometheus.NewDesc("tailbox_events_published_total",
		"Records Kafka acknowledged, by topic; dead-lettered events count under the dead-letter topic.",
		[]string{"topic"}, nil)
	descFailed = prometheus.NewDesc("tailbox_events_failed_total",
		"Events not delivered, by reason (every reason exported from the start): the failed delivery that ends a producer session (retriable: the pipeline restarts and sends it again; rejected, too_large: the connector stops) and poison events that stop the connector with outbox.on_error fail.",
		[]string{"reason"}, nil)
	descDeadLettered = prometheus.NewDesc("tailbox_events_dead_lettered_total",
		"Events sent to outbox.dead_letter_topic instead of their topic, by reason (every reason exported from the start; the log names the topic).",
		[]string{"reason"}, nil)
	descFileIndex = prometheus.NewDesc("tailbox_binlog_file_index",
		"Numeric suffix of the binlog file of the last transaction end read; -1 before the first.",
		nil, nil)
	descPosition = prometheus.NewDesc("tailbox_binlog_position_bytes",
		"Byte position, in that file, of the last transaction end read.",
		nil, nil)
	descLag = prometheus.NewDesc("tailbox_source_lag_seconds",
		"Seconds from the commit time of the last transaction read to now; 0 when caught up (the reader waits for the source, or a heartbeat came since) and before the first transaction.",
		nil, nil)
	descLagBytes = prometheus.NewDesc("tailbox_source_lag_bytes",
		"Bytes of binary log from the last transaction end read to the end of the source's newest binlog file (SHOW BINARY LOGS, sampled every 2s while a session reads); 0 when caught up; absent until measured.",
		nil, nil)
	descLatency = prometheus.NewDesc("tailbox_commit_to_ack_seconds",
		"Time from the commit of an event's transaction on the source to Kafka's acknowledgement of the event (MariaDB commit times have whole seconds).",
		nil, nil)
	descCheckpointAge = prometheus.NewDesc("tailbox_checkpoint_age_seconds",
		"Seconds that read progress has waited to be checkpointed: since the checkpoint last covered everything read or was last written; 0 while it covers everything read (an idle source) and on an ha standby.",
		nil, nil)
	descCheckpointFileIndex = prometheus.NewDesc("tailbox_checkpoint_binlog_file_index",
		"Numeric suffix of the binlog file of the last checkpoint written; -1 before the first.",
		nil, nil)
	descCheckpointPosition = prometheus.NewDesc("tailbox_checkpoint_binlog_position_bytes",
		"Byte position, in that file, of the last checkpoint written.",
		nil, nil)
	descInFlight = prometheus.NewDesc("tailbox_producer_in_flight_records",
		"Records handed to the Kafka producer and not yet acknowledged.",
		nil, nil)
	descRetries = prometheus.NewDesc("tailbox_producer_retries_total",
		"Retry rounds of the Kafka producer: a batch or a partition leader lookup retried after a back-off.",
		nil, nil)
	descReconnects = prometheus.NewDesc("tailbox_source_reconnects_total",
		"Reconnect attempts to the source: of the binlog stream after a lost connection, and retried connects at start-up and at a session's start.",
		nil, nil)
	descRestarts = prometheus.NewDesc("tailbox_pipeline_restarts_total",
		"Restarts of the pipeline from the acknowledged checkpoint after a producer failure.",
		nil, nil)
	descReady = prometheus.NewDesc("tailbox_ready",
		"1 while /readyz reports ready, else 0.",
		nil, nil)
	descHAActive = prometheus.NewDesc("tailbox_ha_active",
		"With ha.enabled: 1 while this replica holds the lease and streams, 0 while it stands by.",
		nil, nil)
	descRowsDeleted = prometheus.NewDesc("tailbox_outbox_rows_deleted_total",
		"With outbox.cleanup: outbox rows deleted after the checkpoint covering their events became durable.",
		nil, nil)
	descRowsWaiting = prometheus.NewDesc("tailbox_outbox_rows_waiting",
		"With outbox.cleanup: published outbox rows remembered for deletion and not deleted yet (waiting for a durable checkpoint, the retention or the rate).",
		nil, nil)
	descInfo = prometheus.NewDesc("tailbox_build_info",
		"Constant 1, labeled with the tailbox version, the source flavor and the connector name.",
		[]string{"version", "flavor", "name"}, nil)
)

// handler returns the /metrics handler: m's metrics plus the Go runtime and
// process collectors, in a registry of its own (never the global one).
func (m *Metrics) handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		exporter{m},
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// exporter is a prometheus.Collector reading m at each scrape.
type exporter struct{ m *Metrics }

// Describe sends the descriptions of every metric Collect may send.
func (exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descRowsRead, descPublished, descFailed, descDeadLettered, descFileIndex, descPosition, descLag, descLagBytes,
		descLatency, descCheckpointAge, descCheckpointFileIndex, descCheckpointPosition, descInFlight,
		descRetries, descReconnects, descRestarts, descReady, descHAActive, descRowsDeleted, descRowsWaiting, descInfo,
	} {
		ch <- d
	}
}

// Collect sends the current values.
func (e exporter) Collect(ch chan<- prometheus.Metric) {
	m, now := e.m, time.Now()
	counters := func(d *prometheus.Desc, v *counterVec, labels int) {
		v.each(func(k labelPair, n uint64) {
			values := []string{k.a, k.b}[:labels]
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), values...)
		})
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}

	counters(descRowsRead, &m.rowsRead, 2)
	counters(descPublished, &m.published, 1)
	counters(descFailed, &m.failed, 1)
	counters(descDeadLettered, &m.deadLettered, 1)

	_, index, pos := m.readPosition()
	gauge(descFileIndex, float64(index))
	gauge(descPosition, float64(pos))
	gauge(descLag, m.lag(now).Seconds())
	if bl := m.backlog(); bl.known {
		gauge(descLagBytes, float64(bl.behind.Bytes))
	}

	buckets, count, sum := m.latency.snapshot()
	ch <- prometheus.MustNewConstHistogram(descLatency, count, sum, buckets)

	gauge(descCheckpointAge, m.checkpointAge(now).Seconds())
	cpIndex, cpPos := int64(-1), uint32(0)
	if p, ok := m.lastCheckpoint(); ok {
		cpIndex, cpPos = binlog.FileIndex(p.Pos.File), p.Pos.Pos
	}
	gauge(descCheckpointFileIndex, float64(cpIndex))
	gauge(descCheckpointPosition, float64(cpPos))
	gauge(descInFlight, float64(m.inFlight()))

	counter(descRetries, m.retries.Load())
	counter(descReconnects, m.sourceReconnects())
	counter(descRestarts, m.restarts.Load())

	ready := 0.0
	if ok, _ := m.health(now).ready(); ok {
		ready = 1
	}
	gauge(descReady, ready)
	if role := m.role.Load(); role != roleNone {
		active := 0.0
		if role == roleActive {
			active = 1
		}
		gauge(descHAActive, active)
	}
	if m.cleanup {
		counter(descRowsDeleted, m.rowsDeleted.Load())
		gauge(descRowsWaiting, float64(m.rowsWaiting.Load()))
	}
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, m.version, *m.flavor.Load(), m.name)
}
