package preflight

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/tailbox-cdc/tailbox/internal/spell"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// SourceChecks are the checks of the connected server that Run makes before
// it streams and Check makes too: binlog settings, grants, outbox tables and
// server_id.
func (k *Checker) SourceChecks(ctx context.Context, insp *binlog.Inspector) []Result {
	srv := insp.Server()
	rs := settingChecks(srv, k.AllowMinimalMetadata)

	user, host, grants, grantsErr := insp.Account(ctx)
	acct := account(k.User, host)
	if grantsErr != nil {
		acct = account(k.User, "%")
	}
	privs := globalPrivileges(grants)
	replicas, replicasErr := insp.Replicas(ctx)

	// REPLICATION SLAVE: only SHOW GRANTS tells, except that MySQL's SHOW
	// REPLICAS needs it too (and counts privileges of active roles).
	slave := Result{Name: "grant REPLICATION SLAVE"}
	switch {
	case privs.has("REPLICATION SLAVE"),
		srv.Flavor == binlog.FlavorMySQL && replicasErr == nil:
		slave.Status, slave.Detail = StatusOK, "granted"
	case grantsErr != nil:
		slave.Status = StatusWarn
		slave.Detail = "cannot read the grants: " + grantsErr.Error()
		slave.Fix = "GRANT REPLICATION SLAVE ON *.* TO " + acct + ";"
	default:
		slave.Status = StatusFail
		slave.Detail = fmt.Sprintf("SHOW GRANTS for %s has no REPLICATION SLAVE ON *.*: the server will not send the binlog", account(user, host))
		slave.Fix = "GRANT REPLICATION SLAVE ON *.* TO " + acct + ";"
	}
	rs = append(rs, slave)

	// REPLICATION CLIENT (BINLOG MONITOR): try the statement tailbox runs.
	clientPriv := replicationClientName(srv)
	client := Result{Name: "grant " + clientPriv}
	_, logsErr := insp.BinaryLogs(ctx)
	switch {
	case logsErr == nil:
		client.Status, client.Detail = StatusOK, "granted (SHOW BINARY LOGS works)"
	case grantsErr != nil && !binlog.IsAccessDenied(logsErr):
		// Neither statement answered (the connection broke, the server
		// restarts): nothing says a grant is missing, and a retry may pass.
		client.Status = StatusWarn
		client.Detail = fmt.Sprintf("cannot tell: SHOW BINARY LOGS failed (%s) and the grants cannot be read", serverMessage(logsErr))
		client.Fix = "run `tailbox check` again"
	case binlog.IsAccessDenied(logsErr) || !privs.has(clientPriv, "REPLICATION CLIENT", "BINLOG MONITOR", "SUPER"):
		client.Status = StatusFail
		client.Detail = fmt.Sprintf("SHOW BINARY LOGS is refused (%s): tailbox cannot list the binlog files or read the current position", serverMessage(logsErr))
		client.Fix = "GRANT " + clientPriv + " ON *.* TO " + acct + ";"
	default:
		// Refused for another reason (binary logging off): the grants say.
		client.Status, client.Detail = StatusOK, "granted"
	}
	rs = append(rs, client)

	rs = append(rs, k.tableChecks(ctx, insp, srv, acct)...)
	rs = append(rs, serverIDCheck(k.ServerID, srv, replicas, replicasErr, acct))
	return rs
}

// settingChecks checks the binlog settings of srv.
func settingChecks(srv binlog.Server, allowMinimal bool) []Result {
	mycnf := func(name, value string) string {
		return fmt.Sprintf("SET GLOBAL %s = '%s'; and %s=%s under [mysqld] in my.cnf", name, value, name, value)
	}
	var rs []Result

	r := Result{Name: "log_bin", Status: StatusOK, Detail: "ON"}
	if !srv.LogBin {
		r.Status, r.Detail = StatusFail, "OFF: the server writes no binary log"
		r.Fix = "add log_bin=mysql-bin under [mysqld] in my.cnf (and remove skip-log-bin or disable-log-bin), then restart the server; binary logging cannot be switched on at runtime"
	}
	rs = append(rs, r)

	r = Result{Name: "binlog_format", Status: StatusOK, Detail: srv.BinlogFormat}
	if !strings.EqualFold(srv.BinlogFormat, "ROW") {
		r.Status, r.Detail = StatusFail, srv.BinlogFormat+"; tailbox needs ROW"
		r.Fix = mycnf("binlog_format", "ROW") + " (sessions open before keep their format until they reconnect)"
	}
	rs = append(rs, r)

	r = Result{Name: "binlog_row_image", Status: StatusOK, Detail: srv.RowImage}
	if !strings.EqualFold(srv.RowImage, "FULL") {
		r.Status, r.Detail = StatusFail, srv.RowImage+"; tailbox needs FULL"
		r.Fix = mycnf("binlog_row_image", "FULL")
	}
	rs = append(rs, r)

	r = Result{Name: "binlog_row_metadata", Status: StatusOK, Detail: srv.RowMetadata}
	if !srv.FullMetadata {
		meta, fix := srv.RowMetadata, mycnf("binlog_row_metadata", "FULL")+" (only binlogs written afterwards carry column names)"
		if meta == "" {
			meta = "not supported by this server version (MySQL 8.0.1+ and MariaDB 10.5+ have it)"
			fix = "upgrade the server"
		}
		if allowMinimal {
			r.Status = StatusWarn
			r.Detail = meta + "; source.allow_minimal_metadata is true: column names come from information_schema and tailbox stops at a schema change of a captured table"
			r.Fix = fix
		} else {
			r.Status = StatusFail
			r.Detail = meta + "; tailbox needs FULL: the binlog carries no column names"
			r.Fix = fix + ", or set source.allow_minimal_metadata: true to read column names from information_schema"
		}
	}
	rs = append(rs, r)

	if srv.Flavor == binlog.FlavorMySQL {
		r = Result{Name: "binlog_row_value_options", Status: StatusOK, Detail: "not PARTIAL_JSON"}
		if strings.Contains(strings.ToUpper(srv.RowValueOptions), "PARTIAL_JSON") {
			r.Status = StatusWarn
			r.Detail = "PARTIAL_JSON: an UPDATE of a JSON column logs only the change; tailbox treats it as an UPDATE (outbox.on_update) and never reads it as an event"
			r.Fix = "SET GLOBAL binlog_row_value_options = ''; and binlog_row_value_options= under [mysqld] in my.cnf"
		}
		rs = append(rs, r)
	}
	return rs
}

// tableChecks checks SELECT on each outbox table, that it exists and that
// it has every mapped column.
func (k *Checker) tableChecks(ctx context.Context, insp *binlog.Inspector, srv binlog.Server, acct string) []Result {
	mapped := k.Columns
	var grants, tables []Result
	for _, t := range k.Tables {
		schema, name, _ := strings.Cut(t, ".")
		quoted := quoteIdent(schema) + "." + quoteIdent(name)
		grant := Result{Name: "grant SELECT on " + t, Status: StatusOK, Detail: "granted"}
		table := Result{Name: "table " + t, Status: StatusOK}

		cols, err := insp.TableColumns(ctx, schema, name)
		switch {
		case err == nil:
			table = columnCheck(table, quoted, cols, mapped)
			if engine, tx, err := insp.TableEngine(ctx, schema, name); err == nil && engine != "" && !tx && table.Status == StatusOK {
				// Its rows outlive a rollback, and tailbox publishes
				// only what committed: events would be lost.
				table.Status = StatusFail
				table.Detail = fmt.Sprintf("uses the %s engine, which does not roll back: an outbox row of a rolled-back transaction stays in the table and is never published (tailbox publishes only what committed)", engine)
				table.Fix = "ALTER TABLE " + quoted + " ENGINE=InnoDB;"
			}
		case binlog.IsAccessDenied(err):
			grant.Status = StatusFail
			grant.Detail = fmt.Sprintf("SELECT is refused (%s): tailbox cannot check the table", serverMessage(err))
			if k.AllowMinimalMetadata {
				grant.Detail += " nor read its column names from information_schema (source.allow_minimal_metadata)"
			}
			grant.Fix = "GRANT SELECT ON " + quoted + " TO " + acct + ";"
			if like := similarTables(ctx, insp, t); len(like) > 0 {
				// The account may have SELECT on the table meant.
				grant.Detail += "; did you mean " + strings.Join(like, " or ") + "?"
				grant.Fix += " or, if outbox.tables is misspelled, correct it"
			}
			table.Name = "" // cannot be checked
		case binlog.IsTableMissing(err):
			table = missingTable(ctx, insp, srv, table, schema, name, createTable(quoted, mapped))
		default:
			table.Status = StatusWarn
			table.Detail = "cannot check: " + err.Error()
			table.Fix = "run `tailbox check` again"
		}
		grants = append(grants, grant)
		if k.DeleteBy != "" && grant.Status == StatusOK {
			grants = append(grants, deleteCheck(ctx, insp, t, quoted, k.DeleteBy, acct))
		}
		if table.Name != "" {
			tables = append(tables, table)
		}
	}
	return append(grants, tables...)
}

// deleteCheck checks, for outbox.cleanup, that the account may delete
// from the outbox table t (quoted) by column: it prepares the DELETE and
// never executes it.
func deleteCheck(ctx context.Context, insp *binlog.Inspector, t, quoted, column, acct string) Result {
	r := Result{Name: "grant DELETE on " + t, Status: StatusOK, Detail: "granted (outbox.cleanup deletes published rows)"}
	schema, name, _ := strings.Cut(t, ".")
	err := insp.CheckDelete(ctx, schema, name, column)
	switch {
	case err == nil:
	case binlog.IsAccessDenied(err):
		r.Status = StatusFail
		r.Detail = fmt.Sprintf("DELETE is refused (%s): outbox.cleanup cannot delete published rows", serverMessage(err))
		r.Fix = "GRANT DELETE ON " + quoted + " TO " + acct + "; or set outbox.cleanup.enabled: false"
	case binlog.IsTableMissing(err):
		r.Status = StatusWarn
		r.Detail = "cannot check: the table does not exist"
		r.Fix = "create the table (see its check), then run `tailbox check` again"
	default:
		r.Status = StatusFail
		r.Detail = fmt.Sprintf("a DELETE by %s cannot be prepared: %s", column, serverMessage(err))
		r.Fix = "set outbox.fields.id to the table's primary key column"
	}
	return r
}

// missingTable is the result for the outbox table schema.name that the
// server does not have: the name as the server spells it where only the
// letter case differs, else similarly named tables ("did you mean"), else
// create, the CREATE TABLE statement that makes it.
func missingTable(ctx context.Context, insp *binlog.Inspector, srv binlog.Server, r Result, schema, name, create string) Result {
	r.Status = StatusFail
	if srv.LowerCaseTableNames == 0 {
		if like, _ := insp.TablesNamedLike(ctx, schema, name); len(like) > 0 {
			r.Detail = fmt.Sprintf("does not exist; %s does, and table names are case-sensitive on this server (lower_case_table_names=0)", strings.Join(like, ", "))
			r.Fix = "set outbox.tables to the name as the server spells it: " + like[0]
			return r
		}
	}
	if like := similarTables(ctx, insp, schema+"."+name); len(like) > 0 {
		r.Detail = "does not exist; did you mean " + strings.Join(like, " or ") + "?"
		r.Fix = "correct outbox.tables (" + like[0] + "), or create the table, e.g. " + create
		return r
	}
	r.Detail = "does not exist"
	r.Fix = "create it, e.g. " + create
	return r
}

// maxTableNames bounds how many of the server's table names a misspelled
// outbox table is compared with.
const maxTableNames = 10000

// similarTables returns up to three tables visible to the account whose
// names are close to want ("schema.table"), closest first; none when the
// names cannot be read.
func similarTables(ctx context.Context, insp *binlog.Inspector, want string) []string {
	names, err := insp.TableNames(ctx, maxTableNames)
	if err != nil {
		return nil
	}
	return closestNames(want, names, 3)
}

// closestNames returns up to n of names ("schema.table") that are probably
// what want meant, closest first: those within a small edit distance of
// want (letter case ignored, a swap of two neighbouring letters is one
// edit) and, when no name is in want's schema (a misspelled or wrong
// schema), those with want's table name. want itself is never among them.
func closestNames(want string, names []string, n int) []string {
	w := strings.ToLower(want)
	wantSchema, wantTable, _ := strings.Cut(w, ".")
	schemaKnown := slices.ContainsFunc(names, func(name string) bool {
		schema, _, _ := strings.Cut(strings.ToLower(name), ".")
		return schema == wantSchema
	})
	limit := max(2, len([]rune(w))/5)
	type candidate struct {
		name string
		dist int
	}
	var found []candidate
	for _, name := range names {
		l := strings.ToLower(name)
		if l == w {
			continue
		}
		d := spell.Distance(w, l)
		if _, table, _ := strings.Cut(l, "."); d <= limit || !schemaKnown && table == wantTable {
			found = append(found, candidate{name, d})
		}
	}
	slices.SortStableFunc(found, func(a, b candidate) int { return a.dist - b.dist })
	out := make([]string, 0, min(n, len(found)))
	for _, c := range found[:min(n, len(found))] {
		out = append(out, c.name)
	}
	return out
}

// Column is a column every outbox table must have because the
// configuration maps it.
type Column struct {
	// Name is the column's name as configured.
	Name string
	// Setting is the setting that maps it, named in fixes:
	// "outbox.fields.id", "outbox.additional[0].column".
	Setting string
	// SQLType is its type in the CREATE TABLE and ALTER TABLE fixes:
	// "CHAR(36) NOT NULL PRIMARY KEY".
	SQLType string
}

// columnCheck compares a table's columns with the mapped ones; column
// names match ignoring case, as MySQL's do.
func columnCheck(r Result, quoted string, cols []string, mapped []Column) Result {
	var missing, settings, adds, present []string
	seen := map[string]bool{}
	for _, m := range mapped {
		if seen[strings.ToLower(m.Name)] {
			continue
		}
		seen[strings.ToLower(m.Name)] = true
		found := false
		for _, col := range cols {
			if strings.EqualFold(col, m.Name) {
				found = true
				break
			}
		}
		if found {
			present = append(present, m.Name)
			continue
		}
		missing = append(missing, fmt.Sprintf("%s (%s)", m.Name, m.Setting))
		settings = append(settings, m.Setting)
		typ := m.SQLType
		if strings.HasSuffix(typ, " PRIMARY KEY") {
			typ = strings.TrimSuffix(typ, " PRIMARY KEY") // a table has one already
		}
		adds = append(adds, "ADD COLUMN "+quoteIdent(m.Name)+" "+strings.Replace(typ, " NOT NULL", "", 1))
	}
	if len(missing) == 0 {
		r.Detail = "has the mapped columns " + strings.Join(present, ", ")
		return r
	}
	r.Status = StatusFail
	r.Detail = fmt.Sprintf("has no column %s; its columns are %s", strings.Join(missing, ", "), strings.Join(cols, ", "))
	r.Fix = fmt.Sprintf("ALTER TABLE %s %s; or set %s to existing columns", quoted, strings.Join(adds, ", "), strings.Join(settings, ", "))
	return r
}

// createTable is a CREATE TABLE statement with the mapped columns.
func createTable(quoted string, mapped []Column) string {
	var cols []string
	seen := map[string]bool{}
	for _, m := range mapped {
		if !seen[strings.ToLower(m.Name)] {
			seen[strings.ToLower(m.Name)] = true
			cols = append(cols, quoteIdent(m.Name)+" "+m.SQLType)
		}
	}
	return "CREATE TABLE " + quoted + " (" + strings.Join(cols, ", ") + ");"
}

// serverIDCheck checks that source.server_id is not the server's own and
// not used by a connected replica.
func serverIDCheck(id uint32, srv binlog.Server, replicas []binlog.Replica, replicasErr error, acct string) Result {
	r := Result{Name: "server_id", Status: StatusOK}
	if id == srv.ServerID {
		r.Status = StatusFail
		r.Detail = fmt.Sprintf("source.server_id %d is the server's own @@server_id", id)
		r.Fix = fmt.Sprintf("set source.server_id to an id that no server or replica of this replication topology uses (not %d)", id)
		return r
	}
	for _, rep := range replicas {
		if rep.ServerID == id {
			r.Status, r.RunTolerates = StatusFail, true
			r.Detail = fmt.Sprintf("source.server_id %d is used by a connected replica (host %s, port %d): the server drops one of two replicas with the same id; it may be this connector already running", id, rep.Host, rep.Port)
			r.Fix = "stop the other replica, or set source.server_id to an id unique among the server's replicas"
			return r
		}
	}
	r.Detail = fmt.Sprintf("%d (the server's is %d)", id, srv.ServerID)
	if replicasErr != nil {
		r.Status = StatusWarn
		r.Detail += fmt.Sprintf("; cannot list the connected replicas to see whether one uses it (%s)", serverMessage(replicasErr))
		r.Fix = "make sure no other replica uses it"
		if binlog.IsAccessDenied(replicasErr) && srv.Flavor == binlog.FlavorMariaDB {
			r.Fix += ", or let check see them: GRANT REPLICATION MASTER ADMIN ON *.* TO " + acct + ";"
		}
		return r
	}
	r.Detail += ", no connected replica uses it"
	return r
}
