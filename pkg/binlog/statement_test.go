package binlog

import (
	"slices"
	"strings"
	"testing"

	"github.com/pingcap/tidb/pkg/parser/mysql"
)

func TestClassifyStatement(t *testing.T) {
	captured := [][2]string{{"shop", "outbox"}, {"shop", "ledger_outbox"}}
	const (
		other  = stmtOther
		alters = stmtAltersCaptured
		writes = stmtWritesCaptured
	)
	const fallback = true
	tests := []struct {
		name     string
		schema   string // default schema; "shop" when empty
		query    string
		mode     mysql.SQLMode
		lctn     int
		want     statementKind
		tables   []string // nil: the outbox, when want is not other
		fallback bool     // the parser rejects it and the tokenizer decides
	}{
		// The false stops.
		{name: "a DDL after a migration comment changes the outbox", query: "/* migration 42 */ ALTER TABLE outbox ADD COLUMN x INT", want: alters},
		{name: "mysqldump's executable DISABLE KEYS is DDL, not DML", query: "/*!40000 ALTER TABLE `outbox` DISABLE KEYS */", want: alters},
		{name: "mysqldump's executable ENABLE KEYS is DDL, not DML", query: "/*!40000 ALTER TABLE `outbox` ENABLE KEYS */;", want: alters},
		{name: "an insert that mentions the outbox in a literal streams on", query: "INSERT INTO other_table (note) VALUES ('copied to the outbox later')", want: other},
		{name: "an insert into a table named outbox-archive streams on", query: "INSERT INTO `outbox-archive` (id) VALUES (1)", want: other},
		{name: "an insert into a table named outbox_archive streams on", query: "INSERT INTO outbox_archive SELECT * FROM outbox", want: other},
		// The silent skip.
		{name: "a backquoted schema-qualified insert writes the outbox", schema: "other", query: "INSERT INTO `shop`.`outbox` (`id`, `aggregatetype`) VALUES ('1', 'order')", want: writes},

		// DML that writes a captured table.
		{name: "a plain insert writes the outbox", query: "INSERT INTO outbox VALUES ('1','a','b','c','{}',NOW(6))", want: writes},
		{name: "an insert with modifiers writes the outbox", query: "INSERT LOW_PRIORITY IGNORE INTO shop.outbox SET id = '1'", want: writes},
		{name: "an insert without INTO writes the outbox", query: "insert outbox values (1)", want: writes},
		{name: "an insert with on duplicate key update writes the outbox", query: "INSERT INTO outbox (id) VALUES (1) ON DUPLICATE KEY UPDATE id = VALUES(id)", want: writes},
		{name: "a replace writes the outbox", query: "REPLACE INTO outbox (id) VALUES (1)", want: writes},
		{name: "an insert select from another table writes the outbox", query: "INSERT INTO outbox (id) SELECT id FROM staging WHERE note = 'x'", want: writes},
		{name: "an insert with a CTE writes the outbox", query: "INSERT INTO outbox (id) WITH s AS (SELECT 1 AS id) SELECT id FROM s", want: writes},
		{name: "an update writes the outbox", query: "UPDATE outbox SET payload = '{}' WHERE id = 1", want: writes},
		{name: "a multi-table update setting an outbox column writes the outbox", query: "UPDATE orders o JOIN outbox x ON x.aggregateid = o.id SET x.type = 'y'", want: writes},
		{name: "a multi-table update with an unqualified assignment may write the outbox", query: "UPDATE orders, outbox SET type = 'y' WHERE orders.id = outbox.aggregateid", want: writes},
		{name: "a multi-table update that only reads the outbox streams on", query: "UPDATE orders o JOIN outbox x ON x.aggregateid = o.id SET o.state = 'sent'", want: other},
		{name: "a single-table update through an alias writes the outbox", query: "UPDATE outbox AS o SET o.type = 'y'", want: writes},
		{name: "a join update setting columns of both tables writes the outbox", query: "UPDATE /* orm */ orders r JOIN outbox o ON o.aggregateid = r.id SET r.state = 'x', o.type = 'y'", want: writes},
		{name: "a CTE named like the outbox is not the outbox", query: "WITH outbox AS (SELECT 1 AS id) UPDATE orders JOIN outbox ON orders.id = outbox.id SET orders.state = 'x'", want: other},
		{name: "a multi-table delete naming a schema-qualified target writes the outbox", query: "DELETE shop.outbox FROM shop.outbox JOIN orders ON orders.id = outbox.aggregateid", want: writes},
		{name: "create table like a template alters the outbox", query: "CREATE TABLE outbox LIKE outbox_template", want: alters},
		{name: "a CTE update writes the outbox", query: "WITH s AS (SELECT id FROM staging) UPDATE outbox SET type = 'y' WHERE id IN (SELECT id FROM s)", want: writes},
		{name: "a delete writes the outbox", query: "DELETE FROM outbox WHERE created_at < NOW() - INTERVAL 1 DAY", want: writes},
		{name: "a multi-table delete of outbox rows writes the outbox", query: "DELETE x FROM outbox AS x JOIN orders o ON o.id = x.aggregateid", want: writes},
		{name: "a multi-table delete with USING writes the outbox", query: "DELETE FROM shop.outbox USING shop.outbox JOIN orders", want: writes},
		{name: "a multi-table delete that only reads the outbox streams on", query: "DELETE o FROM orders o JOIN outbox x ON o.id = x.aggregateid", want: other},
		{name: "load data writes the outbox", query: "LOAD DATA INFILE '/tmp/o.csv' INTO TABLE outbox FIELDS TERMINATED BY ','", want: writes},
		{name: "create table select writes the new outbox", query: "CREATE TABLE outbox SELECT * FROM outbox_template", want: writes},
		{name: "a query-tagged insert writes the outbox", query: "/* app=orders,route=/checkout */ INSERT INTO outbox (id) VALUES (1) /* trace=abc */", want: writes},
		{name: "an insert after a line comment writes the outbox", query: "-- generated\nINSERT INTO outbox (id) VALUES (1)", want: writes},
		{name: "an insert after a hash comment writes the outbox", query: "# generated\nINSERT INTO outbox (id) VALUES (1)", want: writes},
		{name: "an insert with an optimizer hint writes the outbox", query: "INSERT /*+ SET_VAR(foreign_key_checks=OFF) */ INTO outbox (id) VALUES (1)", want: writes},
		{name: "an insert into a second captured table names it", query: "INSERT INTO ledger_outbox (id) VALUES (1)", want: writes, tables: []string{"shop.ledger_outbox"}},
		{name: "an insert under ANSI_QUOTES writes the outbox", query: `INSERT INTO "shop"."outbox" (id) VALUES ('1')`, mode: mysql.ModeANSIQuotes, want: writes},

		// What ORMs and query taggers send.
		{name: "a Hibernate insert writes the outbox", query: "insert into outbox (aggregateid, aggregatetype, payload, type, id) values ('1', 'order', '{}', 'Created', 'e-1')", want: writes},
		{name: "a Rails insert with a sqlcommenter tag writes the outbox", query: "INSERT INTO `outbox` (`id`, `payload`) VALUES ('e-1', '{}') /*application:Shop,controller:orders,action:create*/", want: writes},
		{name: "a GORM upsert writes the outbox", query: "INSERT INTO `outbox` (`id`,`type`) VALUES ('e-1','Created') ON DUPLICATE KEY UPDATE `type`=VALUES(`type`)", want: writes},
		{name: "a Prisma insert writes the outbox", query: "INSERT INTO `shop`.`outbox` (`id`,`aggregateid`) VALUES ('e-1','1')", schema: "other", want: writes},
		{name: "a Flyway history row naming an outbox migration streams on", query: "INSERT INTO `flyway_schema_history` (`installed_rank`, `version`, `description`, `type`, `script`) VALUES (42, '42', 'outbox tenant', 'SQL', 'V42__outbox_tenant.sql')", want: other},
		{name: "a Liquibase changelog row naming the outbox streams on", query: "INSERT INTO DATABASECHANGELOG (ID, AUTHOR, FILENAME, DESCRIPTION) VALUES ('7', 'dev', 'outbox.xml', 'addColumn tableName=outbox')", want: other},

		// Names as the server compares them.
		{name: "an insert into another schema's outbox streams on", query: "INSERT INTO archive.outbox (id) VALUES (1)", want: other},
		{name: "an insert with another default schema streams on", schema: "archive", query: "INSERT INTO outbox (id) VALUES (1)", want: other},
		{name: "an uppercase name is another table when names are case-sensitive", query: "INSERT INTO OUTBOX (id) VALUES (1)", want: other},
		{name: "an uppercase name is the outbox under lower_case_table_names=1", query: "INSERT INTO SHOP.OUTBOX (id) VALUES (1)", lctn: 1, want: writes},
		{name: "a mixed-case name is the outbox under lower_case_table_names=2", query: "DELETE FROM `Outbox`", lctn: 2, want: writes},

		// Literals and comments that only mention the outbox.
		{name: "a double-quoted string mentioning the outbox streams on", query: `INSERT INTO audit (msg) VALUES ("INSERT INTO outbox")`, want: other},
		{name: "an escaped quote does not end a literal", query: `INSERT INTO audit (msg) VALUES ('it\'s INSERT INTO outbox')`, want: other},
		{name: "a comment mentioning the outbox streams on", query: "INSERT INTO audit (id) VALUES (1) /* mirrors outbox */", want: other},
		{name: "a column named outbox streams on", query: "UPDATE orders SET outbox = 1", want: other},
		{name: "a select from the outbox streams on", query: "SELECT * FROM outbox", want: other},
		{name: "a TiDB-only comment is a comment to the server", query: "INSERT INTO audit /*T! , outbox */ (id) VALUES (1)", want: other},

		// Migration tools.
		{name: "gh-ost's cut-over rename alters the outbox", query: "rename /* gh-ost */ table `shop`.`outbox` to `shop`.`_outbox_del`, `shop`.`_outbox_gho` to `shop`.`outbox`", want: alters},
		{name: "gh-ost's ghost table creation streams on", query: "create /* gh-ost */ table `shop`.`_outbox_gho` like `shop`.`outbox`", want: other},
		{name: "pt-osc's new table streams on", query: "CREATE TABLE `shop`.`_outbox_new` LIKE `shop`.`outbox`", want: other},
		{name: "pt-osc's trigger streams on", query: "CREATE TRIGGER `pt_osc_shop_outbox_ins` AFTER INSERT ON `shop`.`outbox` FOR EACH ROW REPLACE INTO `shop`.`_outbox_new` (`id`) VALUES (NEW.`id`)", want: other, fallback: fallback},
		{name: "pt-osc's swap rename alters the outbox", query: "RENAME TABLE `shop`.`outbox` TO `shop`.`_outbox_old`, `shop`.`_outbox_new` TO `shop`.`outbox`", want: alters},
		{name: "a Flyway-commented alter changes the outbox", query: "-- V42__add_tenant.sql\nALTER TABLE outbox ADD COLUMN tenant VARCHAR(64) NULL", want: alters},
		{name: "a Liquibase-commented index creation alters the outbox", query: "/* liquibase changeset 7 */ CREATE INDEX idx_outbox_created ON outbox (created_at)", want: alters},
		{name: "a drop index alters the outbox", query: "DROP INDEX idx_created ON shop.outbox", want: alters},
		{name: "an alter renaming a table to the outbox alters it", query: "ALTER TABLE outbox_new RENAME TO outbox", want: alters},
		{name: "a partition exchange with the outbox alters it", query: "ALTER TABLE archive EXCHANGE PARTITION p0 WITH TABLE outbox", want: alters},
		{name: "a drop table alters the outbox", query: "DROP TABLE IF EXISTS `outbox` /* generated by server */", want: alters},
		{name: "a truncate alters the outbox", query: "TRUNCATE TABLE outbox", want: alters},
		{name: "a create table of the outbox alters it", query: "CREATE TABLE IF NOT EXISTS outbox (id CHAR(36) PRIMARY KEY)", want: alters},
		{name: "the server's drop of a temporary table named like the outbox streams on", query: "DROP TEMPORARY TABLE IF EXISTS `outbox` /* generated by server */", want: other},
		{name: "a temporary table named like the outbox streams on", query: "CREATE TEMPORARY TABLE outbox (id INT)", want: other},
		{name: "a MariaDB temporary table named like the outbox streams on", query: "CREATE OR REPLACE TEMPORARY TABLE outbox (id INT)", want: other, fallback: fallback},
		{name: "an alter of another table streams on", query: "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (oid) REFERENCES outbox (id)", want: other},
		{name: "a view over the outbox streams on", query: "CREATE VIEW v AS SELECT * FROM outbox", want: other},
		{name: "a drop view named like the outbox streams on", query: "DROP VIEW outbox", want: other},
		{name: "analyze of the outbox streams on", query: "ANALYZE TABLE outbox", want: other},
		{name: "a grant on the outbox streams on", query: "GRANT SELECT ON shop.outbox TO 'cdc'@'%'", want: other},

		// mysqldump.
		{name: "mysqldump's lock streams on", query: "/*!40000 ALTER TABLE `audit` DISABLE KEYS */", want: other},
		{name: "mysqldump's set statements stream on", query: "/*!40101 SET NAMES utf8mb4 */", want: other},
		{name: "mysqldump's drop and create alter the outbox", query: "DROP TABLE IF EXISTS `outbox`", want: alters},
		{name: "mysqldump's insert writes the outbox", query: "INSERT INTO `outbox` VALUES ('1','order','o-1','Created','{\\\"a\\\":1}','2024-01-01 00:00:00.000000')", want: writes},
		{name: "an executable comment holding an insert writes the outbox", query: "/*!50000 INSERT INTO outbox (id) VALUES (1) */", want: writes},

		// MariaDB-only syntax the parser rejects: the tokenizer decides.
		{name: "a MariaDB executable comment counts as statement text", query: "ALTER TABLE outbox /*M!100301 WAIT 5 */ ADD COLUMN y INT", want: alters, fallback: fallback},
		{name: "create or replace table alters the outbox", query: "CREATE OR REPLACE TABLE outbox (id INT)", want: alters, fallback: fallback},
		{name: "create or replace table select writes the outbox", query: "CREATE OR REPLACE TABLE outbox AS SELECT * FROM staging", want: writes, fallback: fallback},
		{name: "alter online table alters the outbox", query: "ALTER ONLINE TABLE outbox ADD COLUMN z INT", want: alters, fallback: fallback},
		{name: "alter table wait alters the outbox", query: "ALTER TABLE outbox WAIT 10 ADD COLUMN z INT", want: alters, fallback: fallback},
		{name: "alter table add column if not exists alters the outbox", query: "ALTER TABLE `outbox` ADD COLUMN IF NOT EXISTS z INT INVISIBLE", want: alters, fallback: fallback},
		{name: "an alter ignore table alters the outbox", query: "ALTER IGNORE TABLE outbox ADD UNIQUE KEY (aggregateid)", want: alters},
		{name: "an instant alter with lock none alters the outbox", query: "ALTER TABLE outbox ADD COLUMN w INT, ALGORITHM=INSTANT, LOCK=NONE", want: alters},
		{name: "a MariaDB drop with wait alters the outbox", query: "DROP TABLE outbox_old, outbox WAIT 5", want: alters, fallback: fallback},
		{name: "a MariaDB drop with wait of other tables streams on", query: "DROP TABLE outbox_old, outbox_gho WAIT 5", want: other, fallback: fallback},
		{name: "MariaDB insert returning writes the outbox", query: "INSERT INTO outbox (id) VALUES (1) RETURNING id", want: writes, fallback: fallback},
		{name: "MariaDB delete returning writes the outbox", query: "DELETE FROM shop.outbox WHERE id = 1 RETURNING id", want: writes, fallback: fallback},
		{name: "MariaDB replace returning writes the outbox", query: "REPLACE INTO `outbox` (id) VALUES (1) RETURNING *", want: writes, fallback: fallback},
		{name: "MariaDB insert returning into another table streams on", query: "INSERT INTO audit (note) VALUES ('outbox') RETURNING id", want: other, fallback: fallback},
		{name: "a MariaDB sequence named like the outbox alters it", query: "CREATE OR REPLACE SEQUENCE outbox START WITH 1", want: alters, fallback: fallback},
		{name: "a MariaDB rename with wait alters the outbox", query: "RENAME TABLE outbox WAIT 3 TO outbox_old", want: alters, fallback: fallback},
		{name: "a MariaDB rename with wait to the outbox alters it", query: "RENAME TABLE outbox_new WAIT 3 TO outbox", want: alters, fallback: fallback},
		{name: "a MariaDB system-versioning alter alters the outbox", query: "ALTER TABLE outbox ADD SYSTEM VERSIONING", want: alters, fallback: fallback},
		{name: "a stored procedure mentioning the outbox streams on", query: "CREATE PROCEDURE p() BEGIN INSERT INTO outbox (id) VALUES (1); END", want: other},
		{name: "a MariaDB sequence on another table streams on", query: "CREATE OR REPLACE SEQUENCE outbox_seq", want: other, fallback: fallback},
		{name: "a MariaDB compound statement mentioning the outbox streams on", query: "BEGIN NOT ATOMIC INSERT INTO outbox (id) VALUES (1); END", want: other, fallback: fallback},

		// Statements that never name the outbox are not parsed.
		{name: "a statement without the outbox's name streams on", query: "CREATE OR REPLACE TABLE t (a INT) /* anything goes */", want: other},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schema := tc.schema
			if schema == "" {
				schema = "shop"
			}
			got := classifyStatement(schema, []byte(tc.query), tc.mode, tc.lctn, captured)
			if got.kind != tc.want {
				t.Fatalf("classifyStatement(%q) = %s %v, want %s", tc.query, got.kind, got.tables, tc.want)
			}
			want := tc.tables
			if want == nil && tc.want != stmtOther {
				want = []string{"shop.outbox"}
			}
			if !slices.Equal(got.tables, want) {
				t.Errorf("classifyStatement(%q) tables = %q, want %q", tc.query, got.tables, want)
			}
			if got.parsed == tc.fallback {
				t.Errorf("classifyStatement(%q) parsed = %v, want %v", tc.query, got.parsed, !tc.fallback)
			}
		})
	}
}

func TestStripComments(t *testing.T) {
	tests := []struct {
		name  string
		query string
		mode  mysql.SQLMode
		want  string
	}{
		{name: "text without comments is kept", query: "SELECT 1", want: "SELECT 1"},
		{name: "a block comment becomes a space", query: "/* x */SELECT 1", want: " SELECT 1"},
		{name: "an executable comment keeps its content", query: "/*!40000 ALTER TABLE t DISABLE KEYS */", want: "  ALTER TABLE t DISABLE KEYS  "},
		{name: "a MariaDB executable comment keeps its content", query: "/*M!100301 SELECT 1*/", want: "  SELECT 1 "},
		{name: "a comment inside a literal is kept", query: "SELECT '/* x */', \"-- y\", `#z`", want: "SELECT '/* x */', \"-- y\", `#z`"},
		{name: "a double dash without a space is an operator", query: "SELECT 1--1", want: "SELECT 1--1"},
		{name: "a line comment ends at the newline", query: "SELECT 1 -- x\n+ 2 # y", want: "SELECT 1  \n+ 2  "},
		{name: "a backslash escapes a quote", query: `SELECT 'a\'/* x */'`, want: `SELECT 'a\'/* x */'`},
		{name: "without backslash escapes a backslash ends nothing", query: `SELECT 'a\' /* x */`, mode: mysql.ModeNoBackslashEscapes, want: `SELECT 'a\'  `},
		{name: "an unterminated comment runs to the end", query: "SELECT 1 /* x", want: "SELECT 1  "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := stripComments([]byte(tc.query), tc.mode); got != tc.want {
				t.Errorf("stripComments(%q) = %q, want %q", tc.query, got, tc.want)
			}
		})
	}
}

func TestQuerySQLMode(t *testing.T) {
	tests := []struct {
		name string
		vars []byte
		want mysql.SQLMode
	}{
		{name: "no status variables mean the default mode", vars: nil, want: 0},
		{name: "sql_mode after flags2 is read", vars: []byte{0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 0, 0, 0}, want: mysql.ModeANSIQuotes},
		{name: "modes that do not change lexing are dropped", vars: []byte{1, 0x04, 0, 0x30, 0, 0, 0, 0, 0}, want: mysql.ModeANSIQuotes | mysql.ModeNoBackslashEscapes},
		{name: "a truncated sql_mode is the default mode", vars: []byte{1, 4, 0}, want: 0},
		{name: "an unknown leading code is the default mode", vars: []byte{9, 1, 2}, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := querySQLMode(tc.vars); got != tc.want {
				t.Errorf("querySQLMode(%v) = %d, want %d", tc.vars, got, tc.want)
			}
		})
	}
}

func BenchmarkClassifyStatement(b *testing.B) {
	captured := [][2]string{{"shop", "outbox"}}
	for _, bc := range []struct{ name, query string }{
		{"DDL on the outbox (parsed)", "/* migration 42 */ ALTER TABLE `shop`.`outbox` ADD COLUMN tenant VARCHAR(64) NULL AFTER type"},
		{"DDL on another table (not parsed)", "/* migration 42 */ ALTER TABLE `shop`.`orders` ADD COLUMN tenant VARCHAR(64) NULL AFTER state"},
		{"MariaDB DDL on the outbox (fallback)", "CREATE OR REPLACE TABLE outbox (id CHAR(36) NOT NULL PRIMARY KEY, payload LONGTEXT)"},
		{"statement insert into another table (not parsed)", "INSERT INTO orders (id, state, note) VALUES (1, 'new', 'a note'), (2, 'new', 'another note')"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := []byte(bc.query)
			b.ReportAllocs()
			for b.Loop() {
				classifyStatement("shop", q, 0, 0, captured)
			}
		})
	}
}

// FuzzClassifyStatement checks that no text makes the classifier panic and
// that comments never change what a statement is.
func FuzzClassifyStatement(f *testing.F) {
	for _, q := range []string{
		"/* migration 42 */ ALTER TABLE outbox ADD COLUMN x INT",
		"/*!40000 ALTER TABLE outbox DISABLE KEYS */",
		"INSERT INTO `shop`.`outbox` (id) VALUES ('it''s')",
		"DELETE x FROM outbox x JOIN o USING (id) RETURNING 1",
		"CREATE OR REPLACE TABLE outbox AS SELECT 1",
		"WITH a AS (SELECT 1) UPDATE outbox SET id = 2",
		"DROP TABLE outbox, `a``b` WAIT 1",
		"RENAME TABLE outbox TO",
		"UPDATE outbox",
		"LOAD DATA INFILE 'x' INTO",
		"/*M!100000 INSERT outbox",
		"'", "`", "\"", "/*", "--", "#", "(((",
	} {
		f.Add(q)
	}
	captured := [][2]string{{"shop", "outbox"}}
	f.Fuzz(func(t *testing.T, q string) {
		st := classifyStatement("shop", []byte(q), 0, 0, captured)
		if st.kind != stmtOther && len(st.tables) == 0 {
			t.Errorf("classifyStatement(%q) = %s without a table", q, st.kind)
		}
		commented := classifyStatement("shop", []byte("/* tag */ "+q+" -- trailing"), 0, 0, captured)
		if commented.kind != st.kind && !strings.ContainsAny(q, "'\"`#-/*\\") {
			t.Errorf("comments change %q from %s to %s", q, st.kind, commented.kind)
		}
	})
}
