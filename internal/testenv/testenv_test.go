package testenv

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { Main(m) }

func TestMySQLCreatesAndDropsDatabase(t *testing.T) {
	m := MySQL(t)
	var name string
	t.Run("the database exists during the test", func(t *testing.T) {
		name = m.CreateDatabase(t, "testenv")
		m.Exec(t, "CREATE TABLE "+name+".t (id INT PRIMARY KEY, v VARCHAR(10))")
		m.Exec(t, "INSERT INTO "+name+".t VALUES (?, ?)", 1, "one")
		res := m.Exec(t, "SELECT v FROM "+name+".t WHERE id = 1")
		if v, err := res.GetString(0, 0); err != nil || v != "one" {
			t.Fatalf("SELECT v = %q, %v; want \"one\"", v, err)
		}
	})
	res := m.Exec(t, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name)
	if n, err := res.GetInt(0, 0); err != nil || n != 0 {
		t.Fatalf("database %s still exists after its test ended (count %d, %v)", name, n, err)
	}
}

func TestMySQLConnIsSeparate(t *testing.T) {
	m := MySQL(t)
	db := m.CreateDatabase(t, "conn")
	m.Exec(t, "CREATE TABLE "+db+".t (id INT PRIMARY KEY)")
	conn := m.Conn(t)
	if err := conn.Begin(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := conn.Execute("INSERT INTO " + db + ".t VALUES (1)"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	res := m.Exec(t, "SELECT COUNT(*) FROM "+db+".t")
	if n, _ := res.GetInt(0, 0); n != 0 {
		t.Fatalf("uncommitted row visible on the shared connection (count %d)", n)
	}
	if err := conn.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	res = m.Exec(t, "SELECT COUNT(*) FROM "+db+".t")
	if n, _ := res.GetInt(0, 0); n != 1 {
		t.Fatalf("committed row count = %d, want 1", n)
	}
}

func TestMySQLExecReconnectsAfterTheConnectionIsKilled(t *testing.T) {
	m := MySQL(t)
	id, err := m.Exec(t, "SELECT CONNECTION_ID()").GetInt(0, 0)
	if err != nil {
		t.Fatalf("read connection id: %v", err)
	}
	if _, err := m.Conn(t).Execute(fmt.Sprintf("KILL %d", id)); err != nil {
		t.Fatalf("kill connection %d: %v", id, err)
	}
	again, err := m.Exec(t, "SELECT CONNECTION_ID()").GetInt(0, 0)
	if err != nil || again == id {
		t.Fatalf("connection id after KILL = %d (%v), want a new connection (old %d)", again, err, id)
	}
}

func TestMySQLServerHasTheBinlogSettings(t *testing.T) {
	m := MySQL(t)
	want := map[string]string{
		"log_bin":             "1",
		"binlog_format":       "ROW",
		"binlog_row_image":    "FULL",
		"binlog_row_metadata": "FULL",
	}
	for name, value := range want {
		res := m.Exec(t, "SELECT @@GLOBAL."+name)
		got, err := res.GetString(0, 0)
		if err != nil || got != value {
			t.Errorf("@@%s = %q (%v), want %q", name, got, err, value)
		}
	}
}

func TestDatabaseName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	tests := []struct {
		name, prefix, wantPrefix string
	}{
		{name: "a plain prefix is kept", prefix: "outbox", wantPrefix: "outbox_"},
		{name: "upper case and punctuation are folded", prefix: "Test/Run-1", wantPrefix: "test_run_1_"},
		{name: "a leading digit gets a letter", prefix: "1st", wantPrefix: "t_1st_"},
		{name: "an empty prefix gets a letter", prefix: "", wantPrefix: "t_"},
		{name: "a long prefix is cut", prefix: strings.Repeat("x", 100), wantPrefix: strings.Repeat("x", 40) + "_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := databaseName(tt.prefix)
			if !strings.HasPrefix(got, tt.wantPrefix) || !valid.MatchString(got) {
				t.Errorf("databaseName(%q) = %q, want a valid identifier starting with %q", tt.prefix, got, tt.wantPrefix)
			}
			if again := databaseName(tt.prefix); again == got {
				t.Errorf("databaseName(%q) returned %q twice", tt.prefix, got)
			}
		})
	}
}

func TestKafkaRoundTrip(t *testing.T) {
	k := Kafka(t)
	cl := k.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec := &kgo.Record{
		Topic:   "testenv.roundtrip",
		Key:     []byte("member-1"),
		Value:   []byte(`{"hello":"world"}`),
		Headers: []kgo.RecordHeader{{Key: "id", Value: []byte("e1")}},
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	got := k.Consume(t, []string{rec.Topic}, 1, 10*time.Second)
	if len(got) != 1 || string(got[0].Key) != "member-1" || string(got[0].Value) != `{"hello":"world"}` ||
		len(got[0].Headers) != 1 || string(got[0].Headers[0].Value) != "e1" {
		t.Fatalf("consumed:\n%s\nwant the one produced record", FormatRecords(got))
	}
	if all := k.ConsumeAll(t, []string{rec.Topic}, 300*time.Millisecond); len(all) != 1 {
		t.Fatalf("ConsumeAll got %d records, want 1:\n%s", len(all), FormatRecords(all))
	}
}

func TestKafkaConsumeWaitsForATopicCreatedLater(t *testing.T) {
	k := Kafka(t)
	cl := k.Client(t)
	produced := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		produced <- cl.ProduceSync(ctx, &kgo.Record{Topic: "testenv.later", Value: []byte("v")}).FirstErr()
	}()
	got := k.Consume(t, []string{"testenv.later"}, 1, 10*time.Second)
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d records, want 1", len(got))
	}
}

func TestStartMariaDBAppliesExtraOptions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MariaDB instance")
	}
	m := StartMariaDB(t, "binlog_format=MIXED\nbinlog_row_metadata=NO_LOG")
	check := func() {
		t.Helper()
		res := m.Exec(t, "SELECT @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_metadata")
		format, _ := res.GetString(0, 0)
		metadata, _ := res.GetString(0, 1)
		if format != "MIXED" || metadata != "NO_LOG" {
			t.Fatalf("binlog_format, binlog_row_metadata = %s, %s; want MIXED, NO_LOG", format, metadata)
		}
	}
	check()
	m.Stop(t)
	m.Start(t)
	check() // Exec reconnects, and the restart kept the options.
}
