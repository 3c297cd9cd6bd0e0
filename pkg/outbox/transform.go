package outbox

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"time"
	"unsafe"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// maxPlans bounds the per-table cache; it is cleared when full. A new
// *binlog.Table is made only when a table map changes, so a handful of
// entries is the normal case.
const maxPlans = 256

// Transformer turns outbox rows into events. Make one with New; the zero
// value is not usable. Its methods never block. It keeps per-table work and
// scratch buffers between calls, so it is not safe for concurrent use: use
// one Transformer per goroutine.
type Transformer struct {
	opts Options // validated, defaults applied
	tmpl topicTemplate
	re   *regexp.Regexp // opts.TopicRegex, anchored; nil without
	zone *time.Location

	headerAdds []int    // indexes into opts.Additional with PlacementHeader
	envAdds    []int    // indexes into opts.Additional with PlacementEnvelope
	partAdd    int      // index into opts.Additional with PlacementPartition, or -1
	addKeys    [][]byte // per opts.Additional: `,"<as>":`

	last     *binlog.Table
	lastPlan *plan
	plans    map[*binlog.Table]*plan

	// Scratch space reused by every call.
	buf      []byte   // text spans, then the value, then constant header values
	hdrs     []Header // Event.Headers, reused by the next call
	adds     []span   // text spans of header placement columns
	tmp      []byte   // text of a value written as a JSON string
	rawBuf   []byte   // text of a payload that is not a string or []byte
	raw      []byte   // payload as stored: rawBuf or a view of the row's value
	topicBuf []byte
	topics   map[string]string // valid rendered topics, to reuse their strings
	// lastRoute rendered the valid topic lastTopic for the table of
	// topicPlan (consecutive events mostly share their route).
	lastRoute []byte
	lastTopic string
	topicPlan *plan
	// commitAt is occurredAt's result for commit time commitOf (the events
	// of a transaction share it).
	commitOf, commitAt      time.Time
	commitMicros, commitSet bool

	// The events of a transaction share its time, binlog file and GTID:
	// their JSON text is kept from the last event that wrote them.
	time, file, gtid cachedText

	// slab is the unused rest of the block events' memory is carved from.
	slab []byte
}

// slabSize is the size of the blocks small events' memory (key, header
// values and value) is carved from: one allocation for about ten events of
// a typical outbox row instead of one each. A block stays allocated while
// any event carved from it is referenced. Records are acknowledged about in
// the order they were made, so that is not long; when one partition stalls
// while others go on, each of its waiting events may hold a block of its
// own, at most slabSize where it would hold its own size.
//
// 9472 bytes is one of the runtime's size classes whose spans hold several
// objects (six in 56 KiB); a block of 8 KiB has a span to itself, and
// fetching a span for every block showed in profiles.
const slabSize = 9472

// alloc returns n bytes for an event's memory: a piece of the current
// block when it fits in a quarter of one, else its own allocation.
func (t *Transformer) alloc(n int) []byte {
	if n > slabSize/4 {
		return make([]byte, n)
	}
	if len(t.slab) < n {
		t.slab = make([]byte, slabSize)
	}
	b := t.slab[:n:n]
	t.slab = t.slab[n:]
	return b
}

// cachedText is the JSON text of the last value of one envelope field.
type cachedText struct {
	time   time.Time
	micros bool
	s      string
	text   []byte
}

// appendTime appends occurred as appendTime does, reusing the text of the
// last time appended.
func (c *cachedText) appendTime(b []byte, occurred time.Time, micros bool) []byte {
	if !occurred.Equal(c.time) || micros != c.micros || c.text == nil {
		c.time, c.micros = occurred, micros
		c.text = appendTime(c.text[:0], occurred, micros)
	}
	return append(b, c.text...)
}

// appendQuoted appends s as appendQuoted does, reusing the text of the last
// string appended.
func (c *cachedText) appendQuoted(b []byte, s string) []byte {
	if s != c.s || c.text == nil {
		c.s = s
		c.text = appendQuoted(c.text[:0], s)
	}
	return append(b, c.text...)
}

// maxTopics bounds Transformer.topics; it is cleared when full.
const maxTopics = 1024

// plan is the per-table work: column ordinals, the topic template for
// the table and constant JSON pieces.
type plan struct {
	id, key, typ, payload, route int
	ts                           int   // -1 without Fields.Timestamp
	add                          []int // ordinal per opts.Additional
	// Ordinals of the optional columns, -1 when not configured.
	schemaVersion, traceParent, traceState, spanContext int
	envSource                                           []byte
	ceSource                                            []byte

	tmpl       topicTemplate // with ${table} and ${schema} filled in
	dynamic    bool          // tmpl needs the route_by value
	fixedTopic string        // the topic when not dynamic
	fixedErr   error         // why fixedTopic is not a valid name
}

// span is the text of a value in Transformer.buf; null means SQL NULL.
type span struct {
	start, end int
	null       bool
}

func (s span) empty() bool { return s.null || s.start == s.end }

// New returns a Transformer for opts. Zero fields of opts take the defaults
// of DefaultOptions. It returns an error listing every problem of opts (see
// Options.Validate): an empty ConnectorName, a bad topic template or unknown
// placeholder, an unknown enum value, an additional column name that
// conflicts with the format's own headers or fields, or an option the format
// does not support.
func New(opts Options) (*Transformer, error) {
	cp, err := opts.compile()
	if err != nil {
		return nil, fmt.Errorf("new outbox transformer: %w", err)
	}
	o := cp.opts
	t := &Transformer{
		opts:    o,
		tmpl:    cp.tmpl,
		re:      cp.re,
		partAdd: -1,
		zone:    o.TimestampZone,
		addKeys: make([][]byte, len(o.Additional)),
		plans:   make(map[*binlog.Table]*plan),
		topics:  make(map[string]string),
	}
	for i, a := range o.Additional {
		switch a.Placement {
		case PlacementHeader:
			t.headerAdds = append(t.headerAdds, i)
		case PlacementEnvelope:
			t.envAdds = append(t.envAdds, i)
		case PlacementPartition:
			t.partAdd = i
		}
		k := appendQuoted([]byte{','}, a.As)
		t.addKeys[i] = append(k, ':')
	}
	n := 1 + len(t.headerAdds)
	if o.Format != FormatDebezium {
		n++ // type
	}
	if o.Format == FormatCloudEvents {
		n++ // content-type
	}
	if o.Fields.SchemaVersion != "" {
		n++
	}
	if o.Tracing.enabled() {
		n += 2
	}
	t.hdrs = make([]Header, 0, n)
	return t, nil
}

// Transform maps one row change to a Result. Inserts are published; deletes
// are skipped; updates follow Options.OnUpdate (a Skip with a Warning, a
// silent Skip, or an error wrapping ErrUpdate).
//
// Errors wrapping ErrMissingColumn (the table lacks a mapped column) and
// ErrUpdate are fatal, as are errors for a malformed Change (no table or
// transaction, a row that does not fit its table). Errors for which
// IsPoison is true concern this row only; the Result then carries the
// partial event described at Result.Event.
func (t *Transformer) Transform(c *binlog.Change) (Result, error) {
	if c == nil || c.Table == nil {
		return Result{}, errors.New("transform row change: no table")
	}
	switch c.Op {
	case binlog.OpInsert:
	case binlog.OpDelete:
		return Result{Action: Skip}, nil
	case binlog.OpUpdate:
		switch t.opts.OnUpdate {
		case OnUpdateIgnore:
			return Result{Action: Skip}, nil
		case OnUpdateFail:
			return Result{}, fmt.Errorf("transform %s row at %s:%d (on_update=fail): %w", c.Table, c.File, c.Pos, ErrUpdate)
		}
		return Result{Action: Skip, Warning: "update of an outbox row dropped (on_update=warn)"}, nil
	default:
		return Result{}, fmt.Errorf("transform %s row at %s:%d: unknown operation %s", c.Table, c.File, c.Pos, c.Op)
	}
	p, err := t.planFor(c.Table)
	if err != nil {
		return Result{}, err
	}
	if len(c.Row) != len(c.Table.Columns) {
		return Result{}, fmt.Errorf("transform %s row at %s:%d: row has %d values for %d columns", c.Table, c.File, c.Pos, len(c.Row), len(c.Table.Columns))
	}
	if c.Txn == nil {
		return Result{}, fmt.Errorf("transform %s row at %s:%d: change has no transaction", c.Table, c.File, c.Pos)
	}
	return t.insert(c, p)
}

// planFor returns the cached plan of tb, making it on first sight.
func (t *Transformer) planFor(tb *binlog.Table) (*plan, error) {
	if tb == t.last {
		return t.lastPlan, nil
	}
	p, ok := t.plans[tb]
	if !ok {
		var err error
		if p, err = t.newPlan(tb); err != nil {
			return nil, err
		}
		if len(t.plans) >= maxPlans {
			clear(t.plans)
		}
		t.plans[tb] = p
	}
	t.last, t.lastPlan = tb, p
	return p, nil
}

// newPlan looks up every mapped column of tb by name, once.
func (t *Transformer) newPlan(tb *binlog.Table) (*plan, error) {
	var errs []error
	col := func(option, name string) int {
		i := tb.ColumnIndex(name)
		if i < 0 {
			errs = append(errs, fmt.Errorf("column %q (%s) not found: %w", name, option, ErrMissingColumn))
		}
		return i
	}
	f := t.opts.Fields
	p := &plan{
		id:      col("Fields.ID", f.ID),
		key:     col("Fields.Key", f.Key),
		typ:     col("Fields.Type", f.Type),
		payload: col("Fields.Payload", f.Payload),
		route:   col("Fields.RouteBy", f.RouteBy),
		ts:      -1,
		add:     make([]int, len(t.opts.Additional)),

		schemaVersion: -1, traceParent: -1, traceState: -1, spanContext: -1,
	}
	if f.Timestamp != "" {
		p.ts = col("Fields.Timestamp", f.Timestamp)
	}
	if f.SchemaVersion != "" {
		p.schemaVersion = col("Fields.SchemaVersion", f.SchemaVersion)
	}
	if tr := t.opts.Tracing; tr.TraceParent != "" {
		p.traceParent = col("Tracing.TraceParent", tr.TraceParent)
		if tr.TraceState != "" {
			p.traceState = col("Tracing.TraceState", tr.TraceState)
		}
	} else if tr.SpanContext != "" {
		p.spanContext = col("Tracing.SpanContext", tr.SpanContext)
	}
	for i, a := range t.opts.Additional {
		p.add[i] = col("Additional["+strconv.Itoa(i)+"].Column", a.Column)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("map columns of %s: %w", tb, errors.Join(errs...))
	}

	b := append([]byte(nil), `,"source":{"connector":`...)
	b = appendQuoted(b, t.opts.ConnectorName)
	b = append(b, `,"db":`...)
	b = appendQuoted(b, tb.Schema)
	b = append(b, `,"table":`...)
	b = appendQuoted(b, tb.Name)
	p.envSource = append(b, `,"file":`...)

	src := "/tailbox/" + url.PathEscape(t.opts.ConnectorName) + "/" + url.PathEscape(tb.Schema) + "/" + url.PathEscape(tb.Name)
	p.ceSource = appendQuoted([]byte(`,"source":`), src)

	p.tmpl = t.tmpl.forTable(tb.Schema, tb.Name)
	p.dynamic = p.tmpl.usesRoute()
	if !p.dynamic {
		p.fixedTopic = p.tmpl.fixed()
		if !validTopic(p.fixedTopic) {
			p.fixedErr = fmt.Errorf("render topic for table %s: %q does not match %s: %w", tb, p.fixedTopic, topicPattern, ErrInvalidTopic)
		}
	}
	return p, nil
}

// appendSpan appends the text of v to b and returns where it is.
func appendSpan(b []byte, v any, kind binlog.Kind, zone *time.Location) ([]byte, span) {
	if v == nil {
		return b, span{null: true}
	}
	start := len(b)
	b = appendText(b, v, kind, zone)
	return b, span{start: start, end: len(b)}
}

// appendSpanJSON appends the text at s in b as a JSON string, or null.
func appendSpanJSON(b []byte, s span) []byte {
	if s.null {
		return append(b, "null"...)
	}
	// b[s.start:s.end] lies below len(b), which append never overwrites,
	// even when it moves b to a new array.
	return appendQuoted(b, b[s.start:s.end])
}

// insert builds the event of an inserted row.
func (t *Transformer) insert(c *binlog.Change, p *plan) (Result, error) {
	row, cols, zone := c.Row, c.Table.Columns, t.zone
	b := t.buf[:0]
	var id, key, typ, route span
	b, id = appendSpan(b, row[p.id], cols[p.id].Kind, zone)
	b, key = appendSpan(b, row[p.key], cols[p.key].Kind, zone)
	b, typ = appendSpan(b, row[p.typ], cols[p.typ].Kind, zone)
	b, route = appendSpan(b, row[p.route], cols[p.route].Kind, zone)
	adds := t.adds[:0]
	for _, ai := range t.headerAdds {
		var s span
		ci := p.add[ai]
		b, s = appendSpan(b, row[ci], cols[ci].Kind, zone)
		adds = append(adds, s)
	}
	t.adds = adds

	var res Result
	ev := &res.Event
	occurred, micros, warning := t.occurredAt(c, p)
	ev.Timestamp = occurred
	res.Warning = warning

	var poison error
	if id.empty() {
		poison = fmt.Errorf("event id column %q is %s: %w", t.opts.Fields.ID, nullOrEmpty(id), ErrInvalidEvent)
	} else if s, ok := row[p.id].(string); ok {
		ev.ID = s
	} else {
		ev.ID = string(b[id.start:id.end])
	}
	var err error
	if ev.Topic, err = t.renderTopic(b, route, p); err != nil && poison == nil {
		poison = err
	}
	if t.partAdd >= 0 {
		ci := p.add[t.partAdd]
		ev.Partition, ev.ExplicitPartition, err = t.partitionOf(row[ci], cols[ci].Kind)
		if err != nil && poison == nil {
			poison = err
		}
	}
	if t.opts.Format == FormatCloudEvents && typ.empty() && poison == nil {
		poison = fmt.Errorf("event type column %q is %s, and a CloudEvent needs a type: %w", t.opts.Fields.Type, nullOrEmpty(typ), ErrInvalidEvent)
	}

	src := t.loadPayload(row[p.payload], cols[p.payload].Kind)
	valStart := len(b)
	tomb := false
	if poison == nil {
		switch t.opts.Format {
		case FormatDebezium:
			b, tomb, poison = t.appendDebezium(b, src)
		case FormatCloudEvents:
			b, poison = t.appendCloudEvents(b, c, p, id, key, typ, occurred, micros, src)
		default:
			b, poison = t.appendEnvelope(b, c, p, id, key, typ, route, occurred, micros, src)
		}
	}
	if poison != nil {
		// The dead-letter form: the payload as stored.
		b = append(b[:valStart], t.raw...)
		tomb = src == srcNull
	}
	valEnd := len(b)
	ceHeader := t.opts.Format == FormatCloudEvents && poison == nil
	if ceHeader {
		b = append(b, cloudEventsContentType...)
	}
	schemaVersion, traceParent, traceState := span{null: true}, span{null: true}, span{null: true}
	if p.schemaVersion >= 0 {
		ci := p.schemaVersion
		b, schemaVersion = appendSpan(b, row[ci], cols[ci].Kind, zone)
	}
	if p.traceParent >= 0 || p.spanContext >= 0 {
		var warning string
		b, traceParent, traceState, warning = t.appendTrace(b, c, p)
		res.Warning = joinWarnings(res.Warning, warning)
	}
	t.buf = b
	t.raw = nil // it may alias the caller's row
	defer t.trimScratch()

	// One piece of memory for the key, the header values and the value;
	// each slice is capped so that appending to one cannot touch another
	// (nor the next event's, carved from the same block).
	mem := t.alloc(len(b))
	copy(mem, b)
	sub := func(s span) []byte {
		if s.null {
			return nil
		}
		return mem[s.start:s.end:s.end]
	}
	ev.Key = sub(key)
	hs := append(t.hdrs[:0], Header{Key: "id", Value: sub(id)})
	if t.opts.Format != FormatDebezium {
		hs = append(hs, Header{Key: "type", Value: sub(typ)})
	}
	if ceHeader {
		hs = append(hs, Header{Key: contentTypeHeader, Value: mem[valEnd:len(mem):len(mem)]})
	}
	for j, ai := range t.headerAdds {
		hs = append(hs, Header{Key: t.opts.Additional[ai].As, Value: sub(adds[j])})
	}
	if !schemaVersion.null {
		hs = append(hs, Header{Key: schemaVersionHeader, Value: sub(schemaVersion)})
	}
	if !traceParent.null {
		hs = append(hs, Header{Key: traceparentHeader, Value: sub(traceParent)})
		if !traceState.null {
			hs = append(hs, Header{Key: tracestateHeader, Value: sub(traceState)})
		}
	}
	t.hdrs = hs
	ev.Headers = hs
	if !tomb {
		ev.Value = mem[valStart:valEnd:valEnd]
	}
	if poison != nil {
		return res, fmt.Errorf("transform %s row at %s:%d: %w", c.Table, c.File, c.Pos, poison)
	}
	res.Action = Publish
	return res, nil
}

// maxScratch is the largest scratch buffer kept between calls; one huge
// payload does not pin its buffers for the Transformer's lifetime.
const maxScratch = 1 << 20

func (t *Transformer) trimScratch() {
	if cap(t.buf) > maxScratch {
		t.buf = nil
	}
	if cap(t.rawBuf) > maxScratch {
		t.rawBuf = nil
	}
	if cap(t.tmp) > maxScratch {
		t.tmp = nil
	}
}

func nullOrEmpty(s span) string {
	if s.null {
		return "NULL"
	}
	return "empty"
}

// renderTopic fills the table's template p.tmpl with the route_by text
// at route in b and, with a TopicRegex, its capture groups.
func (t *Transformer) renderTopic(b []byte, route span, p *plan) (string, error) {
	if !p.dynamic {
		return p.fixedTopic, p.fixedErr
	}
	if route.null {
		return "", fmt.Errorf("render topic: route_by column %q is NULL: %w", t.opts.Fields.RouteBy, ErrInvalidTopic)
	}
	v := b[route.start:route.end]
	if t.lastTopic != "" && p == t.topicPlan && bytes.Equal(v, t.lastRoute) {
		return t.lastTopic, nil
	}
	var m []int
	if t.re != nil {
		if m = t.re.FindSubmatchIndex(v); m == nil {
			return "", fmt.Errorf("render topic: route_by value %q does not match route.topic_regex %q: %w", clip(v), t.opts.TopicRegex, ErrInvalidTopic)
		}
	}
	tb := t.topicBuf[:0]
	for _, sg := range p.tmpl.segs {
		switch sg.kind {
		case segLit:
			tb = append(tb, sg.lit...)
		case segRoute:
			tb = append(tb, v...)
		case segGroup:
			if i := 2 * sg.group; m[i] >= 0 { // an unmatched optional group is empty
				tb = append(tb, v[m[i]:m[i+1]]...)
			}
		}
	}
	t.topicBuf = tb
	name, ok := t.topics[string(tb)]
	if !ok {
		name = string(tb)
		if !validTopic(name) {
			return name, fmt.Errorf("render topic: %q does not match %s: %w", name, topicPattern, ErrInvalidTopic)
		}
		if len(t.topics) >= maxTopics {
			clear(t.topics)
		}
		t.topics[name] = name
	}
	t.lastRoute = append(t.lastRoute[:0], v...)
	t.lastTopic, t.topicPlan = name, p
	return name, nil
}

// clip returns b, or its first 64 bytes and an ellipsis, for an error.
func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// partitionOf reads the partition column's value: NULL is no explicit
// partition; integers and decimal text from 0 to MaxInt32 are one; anything
// else is ErrInvalidEvent.
func (t *Transformer) partitionOf(v any, kind binlog.Kind) (int32, bool, error) {
	var n int64 = -1
	switch x := v.(type) {
	case nil:
		return 0, false, nil
	case int64:
		n = x
	case uint64:
		if x <= math.MaxInt32 {
			n = int64(x)
		}
	case string:
		if i, err := strconv.ParseInt(x, 10, 32); err == nil {
			n = i
		}
	case []byte:
		if i, err := strconv.ParseInt(string(x), 10, 32); err == nil {
			n = i
		}
	}
	if n < 0 || n > math.MaxInt32 {
		col := t.opts.Additional[t.partAdd].Column
		return 0, false, fmt.Errorf("partition column %q holds %q, not a partition number (an integer from 0 to 2147483647): %w",
			col, clip(appendText(nil, v, kind, t.zone)), ErrInvalidEvent)
	}
	return int32(n), true, nil
}

// joinWarnings joins two warnings, either of which may be empty.
func joinWarnings(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// occurredAt returns the event time, whether it is printed with
// microseconds, and a warning when a configured timestamp column could not
// be used.
func (t *Transformer) occurredAt(c *binlog.Change, p *plan) (time.Time, bool, string) {
	var warning string
	if p.ts >= 0 {
		var ts time.Time
		ts, warning = t.columnTime(c.Row[p.ts], c.Table.Columns[p.ts].Kind)
		if warning == "" {
			ts = ts.UTC().Truncate(time.Microsecond)
			return ts, ts.Nanosecond() != 0, ""
		}
	}
	ct, micros := c.Txn.CommitTime, c.Txn.CommitTimeMicros
	if !t.commitSet || micros != t.commitMicros || !ct.Equal(t.commitOf) {
		t.commitOf, t.commitMicros, t.commitSet = ct, micros, true
		if micros {
			t.commitAt = ct.UTC().Truncate(time.Microsecond)
		} else {
			t.commitAt = ct.UTC().Truncate(time.Second)
		}
	}
	return t.commitAt, micros, warning
}

// columnTime reads a timestamp column value; a non-empty warning means it
// cannot be used.
func (t *Transformer) columnTime(v any, kind binlog.Kind) (time.Time, string) {
	name := t.opts.Fields.Timestamp
	const fallback = "; occurredAt is the commit time"
	switch x := v.(type) {
	case nil:
		return time.Time{}, fmt.Sprintf("timestamp column %q is NULL%s", name, fallback)
	case time.Time:
		if x.IsZero() {
			return time.Time{}, fmt.Sprintf("timestamp column %q holds the zero date%s", name, fallback)
		}
		if kind == binlog.KindDatetime {
			return wallClockIn(x, t.zone), ""
		}
		return x, ""
	case string:
		return t.textTime(name, x, kind)
	case []byte:
		return t.textTime(name, string(x), kind)
	}
	return time.Time{}, fmt.Sprintf("timestamp column %q has type %s, want timestamp, datetime or text%s", name, kind, fallback)
}

// textTime parses a text timestamp; zone-less text of a TIMESTAMP column is
// UTC, of any other column in the timestamp zone.
func (t *Transformer) textTime(name, s string, kind binlog.Kind) (time.Time, string) {
	zone := t.zone
	if kind == binlog.KindTimestamp {
		zone = time.UTC
	}
	ts, err := parseTextTime(s, zone)
	if err != nil {
		if len(s) > 64 {
			s = s[:64] + "…"
		}
		return time.Time{}, fmt.Sprintf("timestamp column %q value %q is not RFC 3339 or 2006-01-02 15:04:05[.ffffff]; occurredAt is the commit time", name, s)
	}
	return ts, ""
}

// payloadSource is what the payload column holds, by column type.
type payloadSource uint8

const (
	srcNull    payloadSource = iota
	srcJSONDoc               // MySQL JSON text
	srcText                  // text (including MariaDB's JSON, a LONGTEXT)
	srcBinary                // bytes
	srcNumber                // integer or finite float; its text in raw
)

// payloadClass is how the payload is written in a JSON format.
type payloadClass uint8

const (
	payloadNull   payloadClass = iota // null
	payloadJSON                       // embedded JSON: t.raw compacted, or a number
	payloadString                     // t.raw as a JSON string
	payloadBase64                     // t.raw as a base64 JSON string
)

// loadPayload sets t.raw to the payload as stored and tells what it is.
func (t *Transformer) loadPayload(v any, kind binlog.Kind) payloadSource {
	switch x := v.(type) {
	case nil:
		t.raw = nil
		return srcNull
	case string:
		// A view, not a copy: t.raw is only ever read.
		t.raw = unsafe.Slice(unsafe.StringData(x), len(x))
	case []byte:
		t.raw = x
		if kind != binlog.KindJSON && kind != binlog.KindText {
			return srcBinary
		}
	case int64, uint64:
		t.rawBuf = appendText(t.rawBuf[:0], v, kind, t.zone)
		t.raw = t.rawBuf
		return srcNumber
	case float64:
		t.rawBuf = appendText(t.rawBuf[:0], v, kind, t.zone)
		t.raw = t.rawBuf
		if finite(x) {
			return srcNumber
		}
		return srcText
	default:
		t.rawBuf = appendText(t.rawBuf[:0], v, kind, t.zone)
		t.raw = t.rawBuf
		return srcText
	}
	if kind == binlog.KindJSON {
		return srcJSONDoc
	}
	return srcText
}

// appendJSONPayload decides how t.raw is written in a JSON format and,
// when that is as embedded JSON, appends it to b, validated and compacted
// in one pass. For the other classes it appends nothing: appendPayload
// writes them.
func (t *Transformer) appendJSONPayload(b []byte, src payloadSource) ([]byte, payloadClass, error) {
	var ok bool
	if src == srcNull {
		return b, payloadNull, nil
	}
	switch t.opts.PayloadType {
	case PayloadString:
		return b, payloadString, nil
	case PayloadBytes:
		return b, payloadBase64, nil
	case PayloadJSON:
		if src == srcJSONDoc && len(trimJSONSpace(t.raw)) == 0 {
			return b, payloadNull, nil // MySQL's empty JSON document
		}
		b, ok = appendCompactJSON(b, t.raw)
		if !ok {
			return b, 0, fmt.Errorf("payload column %q is not valid JSON (payload_type=json): %w", t.opts.Fields.Payload, ErrInvalidPayload)
		}
		return b, payloadJSON, nil
	}
	switch src {
	case srcNumber:
		return append(b, t.raw...), payloadJSON, nil
	case srcBinary:
		return b, payloadBase64, nil
	case srcJSONDoc:
		if len(trimJSONSpace(t.raw)) == 0 {
			return b, payloadNull, nil
		}
		b, ok = appendCompactJSON(b, t.raw)
		if !ok {
			return b, 0, fmt.Errorf("JSON payload column %q holds invalid JSON: %w", t.opts.Fields.Payload, ErrInvalidPayload)
		}
		return b, payloadJSON, nil
	}
	if v := trimJSONSpace(t.raw); len(v) > 0 && (v[0] == '{' || v[0] == '[') {
		if b, ok = appendCompactJSON(b, v); ok {
			return b, payloadJSON, nil
		}
	}
	return b, payloadString, nil
}

// appendPayload writes the payload of a class other than payloadJSON as a
// JSON value; payloadJSON is already written by appendJSONPayload.
func (t *Transformer) appendPayload(b []byte, cls payloadClass) []byte {
	switch cls {
	case payloadJSON:
		return b
	case payloadString:
		return appendQuoted(b, t.raw)
	case payloadBase64:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, t.raw)
		return append(b, '"')
	}
	return append(b, "null"...)
}

// appendEnvelope writes the envelope format.
func (t *Transformer) appendEnvelope(b []byte, c *binlog.Change, p *plan, id, key, typ, route span, occurred time.Time, micros bool, src payloadSource) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendSpanJSON(b, id)
	b = append(b, `,"type":`...)
	b = appendSpanJSON(b, typ)
	b = append(b, `,"aggregateType":`...)
	b = appendSpanJSON(b, route)
	b = append(b, `,"aggregateId":`...)
	b = appendSpanJSON(b, key)
	b = append(b, `,"occurredAt":"`...)
	b = t.time.appendTime(b, occurred, micros)
	b = append(b, `","payload":`...)
	b, cls, err := t.appendJSONPayload(b, src)
	if err != nil {
		return b, err
	}
	b = t.appendPayload(b, cls)
	for _, ai := range t.envAdds {
		ci := p.add[ai]
		b = append(b, t.addKeys[ai]...)
		b, t.tmp = appendJSONValue(b, t.tmp, c.Row[ci], c.Table.Columns[ci].Kind, t.zone)
	}
	b = append(b, p.envSource...)
	b = t.file.appendQuoted(b, c.File)
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, uint64(c.Pos), 10)
	b = append(b, `,"gtid":`...)
	b = t.gtid.appendQuoted(b, c.Txn.GTID)
	b = append(b, `,"serverId":`...)
	b = strconv.AppendUint(b, uint64(c.ServerID), 10)
	return append(b, "}}"...), nil
}

// appendCloudEvents writes a CloudEvents 1.0 structured-mode JSON event.
func (t *Transformer) appendCloudEvents(b []byte, c *binlog.Change, p *plan, id, key, typ span, occurred time.Time, micros bool, src payloadSource) ([]byte, error) {
	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendSpanJSON(b, id)
	b = append(b, p.ceSource...)
	b = append(b, `,"type":`...)
	b = appendSpanJSON(b, typ)
	if !key.empty() {
		b = append(b, `,"subject":`...)
		b = appendSpanJSON(b, key)
	}
	b = append(b, `,"time":"`...)
	b = t.time.appendTime(b, occurred, micros)
	b = append(b, '"')
	for _, ai := range t.envAdds {
		ci := p.add[ai]
		v := c.Row[ci]
		if v == nil {
			continue // an absent attribute
		}
		b = append(b, t.addKeys[ai]...)
		b, t.tmp = appendExtensionValue(b, t.tmp, v, c.Table.Columns[ci].Kind, t.zone)
	}
	// Write the payload after the JSON attributes; when it turns out not to
	// be embedded JSON, replace them.
	mark := len(b)
	b = append(b, `,"datacontenttype":"application/json","data":`...)
	b, cls, err := t.appendJSONPayload(b, src)
	if err != nil {
		return b, err
	}
	if cls != payloadJSON {
		b = b[:mark]
	}
	switch cls {
	case payloadString:
		b = append(b, `,"datacontenttype":"text/plain","data":`...)
		b = appendQuoted(b, t.raw)
	case payloadBase64:
		b = append(b, `,"datacontenttype":"application/octet-stream","data_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, t.raw)
		b = append(b, '"')
	}
	return append(b, '}'), nil
}

// appendDebezium writes the payload as stored and reports a tombstone.
func (t *Transformer) appendDebezium(b []byte, src payloadSource) ([]byte, bool, error) {
	if src == srcNull {
		return b, true, nil
	}
	if t.opts.PayloadType == PayloadJSON && !(src == srcJSONDoc && len(trimJSONSpace(t.raw)) == 0) && !validJSON(t.raw) {
		return b, false, fmt.Errorf("payload column %q is not valid JSON (payload_type=json): %w", t.opts.Fields.Payload, ErrInvalidPayload)
	}
	if t.opts.TombstoneOnEmptyPayload && blank(t.raw) {
		return b, true, nil
	}
	return append(b, t.raw...), false, nil
}

// trimJSONSpace trims JSON whitespace from both ends of b.
func trimJSONSpace(b []byte) []byte {
	for len(b) > 0 && isJSONSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isJSONSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// blank reports whether b is empty after trimming bytes up to ' ', as Java's
// String.trim (used by Debezium's tombstone check) does.
func blank(b []byte) bool {
	for _, c := range b {
		if c > ' ' {
			return false
		}
	}
	return true
}
