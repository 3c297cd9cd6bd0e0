package binlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// charsetTexts are, for character sets of MariaDB 10.11, a text the
// character set can hold; non-ASCII throughout, with the characters where
// the server's tables differ from common ones (latin1's €, sjis's wave
// dash, cp932's fullwidth tilde and NEC circled digit, supplementary
// characters in UTF-16 and UTF-32).
var charsetTexts = []struct{ charset, text string }{
	{"euckr", "홍길동 님의 주문"},
	{"sjis", "日本語テキスト〜"},
	{"cp932", "日本語テキスト～①"},
	{"ujis", "日本語テキスト〜"},
	{"eucjpms", "日本語テキスト①"},
	{"gbk", "中文测试"},
	{"gb2312", "中文测试"},
	{"big5", "中文測試"},
	{"latin1", "€ café ‰ Œ „ok“"},
	{"latin2", "Łódź zażółć"},
	{"latin5", "İstanbul ğüşıöç"},
	{"latin7", "Ąžuolas ėė"},
	{"cp1250", "Łódź €"},
	{"cp1251", "Привет €"},
	{"cp1256", "العربية"},
	{"cp1257", "Ąžuolas €"},
	{"cp850", "café ñ ½"},
	{"cp852", "Łódź"},
	{"cp866", "Привет"},
	{"koi8r", "Привет"},
	{"koi8u", "Привіт ґ"},
	{"greek", "Ελληνικά"},
	{"hebrew", "עברית"},
	{"tis620", "ภาษาไทย"},
	{"macroman", "café ™"},
	{"ucs2", "홍길동 日本語"},
	{"utf16", "홍길동 😀"},
	{"utf16le", "中文 😀"},
	{"utf32", "中文测试 😀"},
	{"ascii", "plain ascii"},
	{"utf8mb3", "홍길동"},
	{"utf8mb4", "홍길동 😀"},
}

// charsetOutboxDDL is an outbox-shaped table whose text columns, ENUM and
// SET are all in one character set; the second %s adds columns.
const charsetOutboxDDL = `CREATE TABLE %s (
  id            CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY,
  aggregatetype VARCHAR(255) NOT NULL,
  aggregateid   VARCHAR(255) NOT NULL,
  type          VARCHAR(255) NOT NULL,
  payload       LONGTEXT,
  code          CHAR(30),
  state         ENUM('%s', 'other'),
  tags          SET('%s', 'other')%s
) DEFAULT CHARSET=%s`

func openCharsetReader(t *testing.T, db *testenv.MySQLServer, serverID uint32, minimal bool, tables ...string) *binlog.Reader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return openAtLatest(ctx, t, binlog.Config{
		Addr: db.Addr, User: db.User, Password: db.Password, ServerID: serverID,
		Tables: tables, Heartbeat: time.Second, ReconnectBackoff: 50 * time.Millisecond,
		AllowMinimalMetadata: minimal,
	}, zerolog.New(zerolog.NewTestWriter(t)))
}

// utf8Conn returns a connection whose text is UTF-8 (the server converts
// it to each column's character set).
func utf8Conn(t *testing.T, db *testenv.MySQLServer) func(string) {
	t.Helper()
	c := db.Conn(t)
	exec := func(q string) {
		t.Helper()
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("SET NAMES utf8mb4")
	return exec
}

// checkCharsetRow checks that every text column of a row of a
// charsetOutboxDDL table holding text arrived as text in UTF-8.
func checkCharsetRow(t *testing.T, ch binlog.Change, text string) {
	t.Helper()
	want := map[string]string{
		"aggregatetype": "member",
		"aggregateid":   text,
		"type":          text + " created",
		"payload":       `{"name":"` + text + `"}`,
		"code":          text,
		"state":         text,
		"tags":          text + ",other",
	}
	for col, w := range want {
		i := ch.Table.ColumnIndex(col)
		if i < 0 {
			t.Errorf("%s: no column %s", ch.Table, col)
			continue
		}
		if got, ok := ch.Row[i].(string); !ok || got != w {
			t.Errorf("%s.%s = %#v (%T), want %q", ch.Table, col, ch.Row[i], ch.Row[i], w)
		}
	}
}

// TestReaderConvertsEveryCharsetToUTF8 writes a row into an outbox-shaped
// table in each character set and reads it with the Reader: the key, the
// type, the payload, a CHAR, an ENUM and a SET must arrive as the UTF-8
// text written. Each character set has two tables: one of column types
// the Reader's own rows decoder handles, one with a DECIMAL column, which
// go-mysql's decoder handles; both must convert.
func TestReaderConvertsEveryCharsetToUTF8(t *testing.T) {
	db := testenv.MySQL(t)
	dbn := db.CreateDatabase(t, "charsets")
	exec := utf8Conn(t, db)
	var tables []string
	for _, c := range charsetTexts {
		for _, extra := range []string{"", ",\n  amount DECIMAL(10,2)"} {
			name := fmt.Sprintf("%s.fast_%s", dbn, c.charset)
			if extra != "" {
				name = fmt.Sprintf("%s.slow_%s", dbn, c.charset)
			}
			exec(fmt.Sprintf(charsetOutboxDDL, name, c.text, c.text, extra, c.charset))
			tables = append(tables, name)
		}
	}
	r := openCharsetReader(t, db, 4171, false, tables...)
	for i, c := range charsetTexts {
		for _, tb := range tables[2*i : 2*i+2] {
			exec(fmt.Sprintf(`INSERT INTO %s (id, aggregatetype, aggregateid, type, payload, code, state, tags) VALUES ('e-%s', 'member', '%s', '%s created', '{"name":"%s"}', '%s', '%s', '%s,other')`,
				tb, c.charset, c.text, c.text, c.text, c.text, c.text, c.text))
		}
	}
	changes, _ := collect(t, r, len(tables))
	if len(changes) != len(tables) {
		t.Fatalf("%d changes, want %d", len(changes), len(tables))
	}
	for i, ch := range changes {
		c := charsetTexts[i/2]
		t.Run(ch.Table.Name, func(t *testing.T) {
			if want := tables[i]; ch.Table.String() != want {
				t.Fatalf("change %d is of %s, want %s", i, ch.Table, want)
			}
			checkCharsetRow(t, ch, c.text)
		})
	}
}

// TestReaderStopsOnACharsetItCannotConvert: a captured table with a column
// in a character set without a decoder stops the Reader at its TABLE_MAP,
// with an error naming the table, the column and the character set.
func TestReaderStopsOnACharsetItCannotConvert(t *testing.T) {
	db := testenv.MySQL(t)
	dbn := db.CreateDatabase(t, "charsets")
	exec := utf8Conn(t, db)
	exec(fmt.Sprintf(testenv.OutboxDDL, dbn))
	exec("ALTER TABLE " + dbn + ".outbox ADD COLUMN note VARCHAR(20) CHARACTER SET keybcs2")
	r := openCharsetReader(t, db, 4172, false, dbn+".outbox")
	exec(fmt.Sprintf(`INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload, note) VALUES ('e1', 'member', '1', 'Created', '{}', 'abc')`, dbn))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		it, err := r.Next(ctx)
		if err == nil {
			if it.Kind == binlog.ItemChange {
				t.Fatalf("a change of %s was read: %v", it.Change.Table, it.Change.Row)
			}
			continue
		}
		if !errors.Is(err, binlog.ErrUnsupported) {
			t.Fatalf("Next: %v; want an error wrapping ErrUnsupported", err)
		}
		for _, w := range []string{dbn + ".outbox", "column note", "keybcs2"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("the error does not name %q: %v", w, err)
			}
		}
		return
	}
}

// TestReaderConvertsCharsetsWithoutFullMetadata: with
// binlog_row_metadata=NO_LOG the TABLE_MAP has neither names nor character
// sets, and both come from information_schema; with MINIMAL it has the
// character sets (not the ENUM and SET members, which stay numbers).
func TestReaderConvertsCharsetsWithoutFullMetadata(t *testing.T) {
	db := testenv.StartMariaDB(t, "binlog_row_metadata=NO_LOG")
	dbn := db.CreateDatabase(t, "charsets")
	exec := utf8Conn(t, db)
	const text = "홍길동 님의 주문"
	table := dbn + ".outbox"
	exec(fmt.Sprintf(charsetOutboxDDL, table, text, text, ",\n  secret VARBINARY(8)", "euckr"))
	check := func(t *testing.T, ch binlog.Change) {
		t.Helper()
		for col, w := range map[string]string{"aggregateid": text, "type": text + " created", "payload": `{"name":"` + text + `"}`, "code": text} {
			if got := ch.Row[ch.Table.ColumnIndex(col)]; got != w {
				t.Errorf("%s = %#v, want %q", col, got, w)
			}
		}
		if got := ch.Row[ch.Table.ColumnIndex("secret")]; fmt.Sprintf("%T %x", got, got) != "[]uint8 00ff" {
			t.Errorf("secret = %#v, want []byte{0x00, 0xff}", got)
		}
		if got := ch.Row[ch.Table.ColumnIndex("state")]; got != int64(1) {
			t.Errorf("state = %#v, want the index 1 (no member names without FULL metadata)", got)
		}
	}
	insert := fmt.Sprintf(`INSERT INTO %s (id, aggregatetype, aggregateid, type, payload, code, state, tags, secret) VALUES ('%%s', 'member', '%s', '%s created', '{"name":"%s"}', '%s', '%s', '%s,other', x'00ff')`,
		table, text, text, text, text, text, text)

	t.Run("NO_LOG takes character sets from information_schema", func(t *testing.T) {
		r := openCharsetReader(t, db, 4173, true, table)
		exec(fmt.Sprintf(insert, "e1"))
		changes, _ := collect(t, r, 1)
		check(t, changes[0])
	})
	t.Run("MINIMAL takes them from the TABLE_MAP", func(t *testing.T) {
		exec("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
		exec2 := utf8Conn(t, db) // a session started after the change
		r := openCharsetReader(t, db, 4174, true, table)
		exec2(fmt.Sprintf(insert, "e2"))
		changes, _ := collect(t, r, 1)
		check(t, changes[0])
	})
}
