package binlog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/rs/zerolog"
)

// fixtureDir holds binlogs recorded on Oracle MySQL servers (see its README).
const fixtureDir = "../../../shared/fixtures/mysql8"

// replay feeds a recorded MySQL binlog file through the Reader's event
// handling, as the replication stream would, and returns the items.
// names, when non-nil, stands in for information_schema (MINIMAL metadata).
func replay(t *testing.T, file string, tables []string, full bool, names ...map[string][]string) ([]Item, error) {
	t.Helper()
	path := filepath.Join(fixtureDir, file)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("fixture %s: %v (the shared fixtures must sit beside the repository)", path, err)
	}
	r := &Reader{
		cfg: Config{Tables: tables}, log: zerolog.Nop(),
		insp:       &Inspector{srv: Server{Flavor: FlavorMySQL, FullMetadata: full, GTIDMode: true}},
		tables:     map[uint64]*table{},
		byName:     map[string]*table{},
		infoSchema: map[string]*infoColumns{},
		captured:   map[string]map[string]struct{}{},
	}
	for _, tb := range tables {
		s, n := splitTable(tb)
		r.capList = append(r.capList, [2]string{s, n})
		if r.captured[s] == nil {
			r.captured[s] = map[string]struct{}{}
		}
		r.captured[s][n] = struct{}{}
	}
	if len(names) > 0 {
		r.cfg.AllowMinimalMetadata = true
		for table, n := range names[0] {
			r.infoSchema[table] = &infoColumns{names: n}
		}
	}
	g, _ := mysql.ParseMysqlGTIDSet("")
	r.gset = g
	r.file = file
	p := replication.NewBinlogParser()
	p.SetFlavor(mysql.MySQLFlavor)
	p.SetParseTime(true)
	p.SetRenderJSONAsMySQLText(true)
	p.SetVerifyChecksum(false) // four files carry the in-use FDE checksum quirk
	p.SetRowsEventDecodeFunc(r.decodeRows)
	var herr error
	err := p.ParseFile(path, 0, func(e *replication.BinlogEvent) error {
		if herr != nil {
			return nil
		}
		herr = r.handle(context.Background(), e, e.Header.LogPos)
		return nil
	})
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	return r.pending, herr
}

func splitTable(s string) (string, string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func changes(items []Item) []Change {
	var out []Change
	for _, it := range items {
		if it.Kind == ItemChange {
			out = append(out, it.Change)
		}
	}
	return out
}

func markers(items []Item) []Position {
	var out []Position
	for _, it := range items {
		if it.Kind == ItemMarker {
			out = append(out, it.Marker)
		}
	}
	return out
}

func TestMySQLFixtureEnumSetGTID(t *testing.T) {
	items, err := replay(t, "mysql-8.0.28-fullmeta-gtid-enum-set.binlog", []string{"mysql.t"}, true)
	if err != nil {
		t.Fatal(err)
	}
	cs := changes(items)
	if len(cs) != 3 {
		t.Fatalf("got %d changes, want insert, update, delete: %+v", len(cs), cs)
	}
	ops := []Op{cs[0].Op, cs[1].Op, cs[2].Op}
	if ops[0] != OpInsert || ops[1] != OpUpdate || ops[2] != OpDelete {
		t.Errorf("ops = %v", ops)
	}
	if cs[0].Row[2] != "var1" || cs[0].Row[3] != "one,three" || cs[1].Row[2] != "variant2" || cs[1].Row[3] != "two,four" {
		t.Errorf("ENUM/SET names: insert %v %v, update %v %v", cs[0].Row[2], cs[0].Row[3], cs[1].Row[2], cs[1].Row[3])
	}
	tb := cs[0].Table
	names := []string{}
	for _, c := range tb.Columns {
		names = append(names, c.Name)
	}
	if got := names; len(got) != 5 || got[0] != "f1" || got[4] != "f5" {
		t.Errorf("column names = %v", got)
	}
	if tb.Columns[2].Kind != KindEnum || tb.Columns[3].Kind != KindSet || tb.Columns[4].Kind != KindText {
		t.Errorf("kinds = %v %v %v", tb.Columns[2].Kind, tb.Columns[3].Kind, tb.Columns[4].Kind)
	}
	for i, c := range cs {
		if _, ok := c.Row[2].(string); !ok && c.Row[2] != nil {
			t.Errorf("change %d: ENUM value %#v is not its name", i, c.Row[2])
		}
		if _, ok := c.Row[3].(string); !ok && c.Row[3] != nil {
			t.Errorf("change %d: SET value %#v is not its names", i, c.Row[3])
		}
	}
	txn := cs[0].Txn
	if want := "93e95066-a2f4-11ec-9b69-9657f0ae95e2:"; len(txn.GTID) <= len(want) || txn.GTID[:len(want)] != want {
		t.Errorf("GTID = %q", txn.GTID)
	}
	if !txn.CommitTimeMicros || txn.CommitTime.Year() < 2022 {
		t.Errorf("commit time = %v (micros %v), want the original_commit_timestamp", txn.CommitTime, txn.CommitTimeMicros)
	}
	ms := markers(items)
	if len(ms) < 5 {
		t.Fatalf("want a marker per transaction, got %v", ms)
	}
	if last := ms[len(ms)-1]; last.GTID != "93e95066-a2f4-11ec-9b69-9657f0ae95e2:1-5" {
		t.Errorf("last marker GTID set = %q", last.GTID)
	}
}

func TestMySQLFixtureCompressedPayload(t *testing.T) {
	items, err := replay(t, "mysql-8.0.32-zstd-payload.binlog", []string{"test.tb1"}, false, map[string][]string{"test.tb1": {"a"}})
	if err != nil {
		t.Fatal(err)
	}
	cs := changes(items)
	if len(cs) != 1 || cs[0].Op != OpInsert || cs[0].Row[0] != int64(1) {
		t.Fatalf("changes = %+v", cs)
	}
	ms := markers(items)
	// The XID inside the payload ends the transaction at the payload's
	// position; the real ROTATE gives {next file, 4}.
	if len(ms) != 2 || ms[0].Pos != cs[0].Pos || ms[1].File != "binlog.000043" || ms[1].Pos != 4 {
		t.Fatalf("markers = %v (change at %d)", ms, cs[0].Pos)
	}
}

func TestMySQLFixtureMinimalMetadataRefused(t *testing.T) {
	_, err := replay(t, "mysql-8.0.31-zstd-payload-json-rowsquery.binlog", []string{"a.test_table_3"}, false)
	if !errors.Is(err, ErrMetadata) {
		t.Fatalf("got %v, want ErrMetadata", err)
	}
}

func TestMySQLFixtureUncapturedRowsAreNotDecoded(t *testing.T) {
	// Nothing captured: every rows event is left undecoded and only markers come out.
	items, err := replay(t, "mysql-8.0.22-json-partial-update.binlog", []string{"other.table"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if cs := changes(items); len(cs) != 0 {
		t.Fatalf("uncaptured table produced %d changes", len(cs))
	}
	if ms := markers(items); len(ms) < 6 {
		t.Fatalf("want a marker per transaction, got %v", ms)
	}
}

func TestMySQLFixtureInvisibleColumnsAndBlob(t *testing.T) {
	items, err := replay(t, "mysql-8.0.26-fullmeta-gtid-invisible-cols.binlog", []string{"mysql.t1"}, true)
	if err != nil {
		t.Fatal(err)
	}
	cs := changes(items)
	if len(cs) == 0 {
		t.Fatal("no changes")
	}
	cols := cs[0].Table.Columns
	if cols[0].Name != "f1" || cols[0].Kind != KindUint || cols[2].Kind != KindInt || cols[3].Kind != KindText || cols[4].Kind != KindBinary || cols[5].Kind != KindUint {
		t.Fatalf("columns = %+v", cols)
	}
	var sawBig, sawNeg bool
	for _, c := range cs {
		if v, ok := c.Row[5].(uint64); ok && v == 6000000000 {
			sawBig = true
		}
		if v, ok := c.Row[2].(int64); ok && v < 0 {
			sawNeg = true
		}
		if c.Row[4] != nil {
			if _, ok := c.Row[4].([]byte); !ok {
				t.Errorf("BLOB value %#v is not []byte", c.Row[4])
			}
		}
	}
	if !sawBig || !sawNeg {
		t.Errorf("want the 6000000000 BIGINT UNSIGNED and a negative INT among %+v", cs)
	}
}

func TestMySQLFixtureJSONOpaque(t *testing.T) {
	items, err := replay(t, "mysql-9.0.1-fullmeta-json-opaque.binlog", []string{"foo.test"}, true)
	if err != nil {
		t.Fatal(err)
	}
	cs := changes(items)
	if len(cs) != 8 {
		t.Fatalf("got %d changes, want 8", len(cs))
	}
	for _, c := range cs {
		if c.Table.Columns[0].Kind != KindJSON {
			t.Fatalf("kind = %v", c.Table.Columns[0].Kind)
		}
		if s, ok := c.Row[0].(string); ok && s != "" && s[0] != '{' && s[0] != '[' && s != "null" {
			t.Errorf("JSON text %q", s)
		}
	}
}

// TestMySQLFixtureDeriveGTIDAtFilePos checks the FILE:POS → GTID set
// derivation against the sets the stream itself tracks at every marker.
func TestMySQLFixtureDeriveGTIDAtFilePos(t *testing.T) {
	for _, file := range []string{"mysql-8.0.28-fullmeta-gtid-enum-set.binlog", "mysql-8.0.31-zstd-payload-json-rowsquery.binlog", "mysql-8.0.32-zstd-payload.binlog"} {
		t.Run(file, func(t *testing.T) {
			items, err := replay(t, file, []string{"none.none"}, true)
			if err != nil {
				t.Fatal(err)
			}
			var events []*replication.BinlogEvent
			p := replication.NewBinlogParser()
			p.SetFlavor(mysql.MySQLFlavor)
			p.SetVerifyChecksum(false)
			p.SetRawMode(false)
			if err := p.ParseFile(filepath.Join(fixtureDir, file), 0, func(e *replication.BinlogEvent) error {
				events = append(events, e)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			previous := ""
			for _, e := range events {
				if pg, ok := e.Event.(*replication.PreviousGTIDsEvent); ok {
					previous = pg.GTIDSets
				}
			}
			prev := ""
			for _, m := range markers(items) {
				if m.File != file {
					continue // a rotate marker names the next file
				}
				i := 0
				next := func() (*replication.BinlogEvent, error) {
					if i == len(events) {
						return nil, errors.New("end of file")
					}
					i++
					return events[i-1], nil
				}
				got, err := deriveMySQLGTID(next, m.Pos)
				if err != nil {
					t.Fatalf("derive at %d: %v", m.Pos, err)
				}
				// The stream started from an empty set, the derivation from
				// PREVIOUS_GTIDS: derived = PREVIOUS_GTIDS ∪ streamed, exactly.
				want, _ := mysql.ParseMysqlGTIDSet(previous)
				if m.GTID != "" {
					if err := want.Update(m.GTID); err != nil {
						t.Fatal(err)
					}
				}
				ds, _ := mysql.ParseMysqlGTIDSet(got)
				if !ds.Equal(want) {
					t.Errorf("at %d: derived %q, want %q", m.Pos, got, want)
				}
				prev = got
			}
			if prev == "" {
				t.Fatalf("no GTID set derived at any marker of %s", file)
			}
		})
	}
}
