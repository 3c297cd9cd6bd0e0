package connector

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

// kafkaCheckTimeout bounds the Kafka check: connecting, the metadata
// request and starting the producer.
const kafkaCheckTimeout = 30 * time.Second

// Status is the outcome of one preflight check.
type Status int

// Statuses of a check.
const (
	// StatusOK means the item is as tailbox needs it.
	StatusOK Status = iota
	// StatusWarn means tailbox works, with a limitation the detail names;
	// `tailbox check` still exits 0.
	StatusWarn
	// StatusFail means the item must be fixed; `tailbox check` exits 1.
	StatusFail
)

// String returns "ok", "warn" or "FAIL".
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusWarn:
		return "warn"
	case StatusFail:
		return "FAIL"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Result is one item of the preflight checklist.
type Result struct {
	// Name is what was checked: "log_bin", "grant REPLICATION SLAVE",
	// "table shop.outbox", "kafka", ...
	Name string
	// Status is the outcome.
	Status Status
	// Detail says what was found.
	Detail string
	// Fix is the exact remedy (SQL statements, my.cnf lines, settings) for
	// a failure or a warning; "" when Status is StatusOK.
	Fix string
	// Fatal marks the items on which `run` refuses to start when they fail:
	// it cannot work, or would stop at the first event, without them.
	Fatal bool
}

// String returns the checklist line, with the fix on a second line:
//
//	FAIL  binlog_format: MIXED; tailbox needs ROW
//	      fix: SET GLOBAL binlog_format = 'ROW'; ...
func (r Result) String() string {
	s := fmt.Sprintf("%-4s  %s: %s", r.Status, r.Name, r.Detail)
	if r.Fix != "" {
		s += "\n      fix: " + r.Fix
	}
	return s
}

// Failed reports whether any of rs failed.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == StatusFail {
			return true
		}
	}
	return false
}

// Check runs the preflight of `tailbox check` and returns the checklist,
// in a fixed order: the source server (reachable, version), its binlog
// settings, the account's grants, the outbox tables and their mapped
// columns, server_id, the start position (the stored checkpoint, else
// start.from) and Kafka. It connects to the source once, without retrying,
// and to Kafka within a bounded time; it writes nothing: no checkpoint, no
// record. Every problem is a Result; when the source cannot be reached the
// items that need it are left out. The items marked Fatal are the ones Run
// refuses to start on, with the same text.
func (c *Connector) Check(ctx context.Context) []Result {
	var rs []Result
	rs = append(rs, c.checkSource(ctx)...)
	return append(rs, c.checkKafka(ctx))
}

// checkSource connects to the source once and runs every check that needs it.
func (c *Connector) checkSource(ctx context.Context) []Result {
	addr := c.cfg.Source.Addr
	reader, err := c.dialReader(ctx, c.readerConfig())
	if errors.Is(err, binlog.ErrTLS) {
		return []Result{{Name: "source", Status: StatusFail, Detail: err.Error(),
			Fix: "correct source.tls (mode, ca_file, cert_file, key_file)"}}
	}
	if err != nil {
		r := Result{Name: "source", Status: StatusFail, Detail: fmt.Sprintf("cannot connect to %s: %s", addr, err)}
		switch {
		case binlog.IsAccessDenied(err):
			r.Fix = fmt.Sprintf("check source.user and source.password (or source.password_file); the server needs an account for user %s from this host, e.g. CREATE USER %s IDENTIFIED BY '...';",
				sqlString(c.cfg.Source.User), account(c.cfg.Source.User, "%"))
		case errors.Is(err, binlog.ErrConnection):
			r.Fix = "check source.addr (host:port) and that the server accepts TCP connections from this host (bind_address, port, firewall), and source.tls.mode"
		default:
			r.Fix = "check source.addr, source.user and source.flavor"
		}
		return []Result{r}
	}
	defer reader.Close()
	srv := reader.Server()

	src := Result{Name: "source", Status: StatusOK, Detail: fmt.Sprintf("%s answers: %s %s", addr, flavorName(srv.Flavor), srv.Version)}
	acct := account(c.cfg.Source.User, "%")
	if user, host, _, err := reader.Account(ctx); err == nil {
		src.Detail += ", connected as " + account(user, host)
		acct = account(c.cfg.Source.User, host)
	}
	if detected := versionFlavor(srv.Version); c.cfg.Source.Flavor != "" && c.cfg.Source.Flavor != "auto" && detected != srv.Flavor {
		src.Status = StatusWarn
		src.Detail += fmt.Sprintf("; source.flavor is %s, but the version says %s", c.cfg.Source.Flavor, flavorName(detected))
		src.Fix = "set source.flavor: auto"
	}
	rs := []Result{src}
	rs = append(rs, c.sourceChecks(ctx, reader)...)
	rs = append(rs, c.checkStart(ctx, reader, acct))
	return rs
}

// sourceChecks are the checks of the connected server that Run shares with
// Check: binlog settings, grants, outbox tables and server_id.
func (c *Connector) sourceChecks(ctx context.Context, reader *binlog.Reader) []Result {
	srv := reader.Server()
	rs := settingChecks(srv, c.cfg.Source.AllowMinimalMetadata)

	user, host, grants, grantsErr := reader.Account(ctx)
	acct := account(c.cfg.Source.User, host)
	if grantsErr != nil {
		acct = account(c.cfg.Source.User, "%")
	}
	privs := globalPrivileges(grants)
	replicas, replicasErr := reader.Replicas(ctx)

	// REPLICATION SLAVE: only SHOW GRANTS tells, except that MySQL's SHOW
	// REPLICAS needs it too (and counts privileges of active roles).
	slave := Result{Name: "grant REPLICATION SLAVE", Fatal: true}
	switch {
	case privs.has("REPLICATION SLAVE"),
		srv.Flavor == binlog.FlavorMySQL && replicasErr == nil:
		slave.Status, slave.Detail = StatusOK, "granted"
	case grantsErr != nil:
		slave.Status, slave.Fatal = StatusWarn, false
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
	client := Result{Name: "grant " + clientPriv, Fatal: true}
	_, logsErr := reader.BinaryLogs(ctx)
	switch {
	case logsErr == nil:
		client.Status, client.Detail = StatusOK, "granted (SHOW BINARY LOGS works)"
	case grantsErr != nil && !binlog.IsAccessDenied(logsErr):
		// Neither statement answered (the connection broke, the server
		// restarts): nothing says a grant is missing, and a retry may pass.
		client.Status, client.Fatal = StatusWarn, false
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

	rs = append(rs, c.tableChecks(ctx, reader, srv, acct)...)
	rs = append(rs, serverIDCheck(c.cfg.Source.ServerID, srv, replicas, replicasErr, acct))
	return rs
}

// settingChecks checks the binlog settings of srv.
func settingChecks(srv binlog.Server, allowMinimal bool) []Result {
	mycnf := func(name, value string) string {
		return fmt.Sprintf("SET GLOBAL %s = '%s'; and %s=%s under [mysqld] in my.cnf", name, value, name, value)
	}
	var rs []Result

	r := Result{Name: "log_bin", Status: StatusOK, Detail: "ON", Fatal: true}
	if !srv.LogBin {
		r.Status, r.Detail = StatusFail, "OFF: the server writes no binary log"
		r.Fix = "add log_bin=mysql-bin under [mysqld] in my.cnf (and remove skip-log-bin or disable-log-bin), then restart the server; binary logging cannot be switched on at runtime"
	}
	rs = append(rs, r)

	r = Result{Name: "binlog_format", Status: StatusOK, Detail: srv.BinlogFormat, Fatal: true}
	if !strings.EqualFold(srv.BinlogFormat, "ROW") {
		r.Status, r.Detail = StatusFail, srv.BinlogFormat+"; tailbox needs ROW"
		r.Fix = mycnf("binlog_format", "ROW") + " (sessions open before keep their format until they reconnect)"
	}
	rs = append(rs, r)

	r = Result{Name: "binlog_row_image", Status: StatusOK, Detail: srv.RowImage, Fatal: true}
	if !strings.EqualFold(srv.RowImage, "FULL") {
		r.Status, r.Detail = StatusFail, srv.RowImage+"; tailbox needs FULL"
		r.Fix = mycnf("binlog_row_image", "FULL")
	}
	rs = append(rs, r)

	r = Result{Name: "binlog_row_metadata", Status: StatusOK, Detail: srv.RowMetadata, Fatal: true}
	if !srv.FullMetadata {
		meta, fix := srv.RowMetadata, mycnf("binlog_row_metadata", "FULL")+" (only binlogs written afterwards carry column names)"
		if meta == "" {
			meta = "not supported by this server version (MySQL 8.0.1+ and MariaDB 10.5+ have it)"
			fix = "upgrade the server"
		}
		if allowMinimal {
			r.Status, r.Fatal = StatusWarn, false
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
func (c *Connector) tableChecks(ctx context.Context, reader *binlog.Reader, srv binlog.Server, acct string) []Result {
	mapped := c.mappedColumns()
	var grants, tables []Result
	for _, t := range c.cfg.Outbox.Tables {
		schema, name, _ := strings.Cut(t, ".")
		quoted := quoteIdent(schema) + "." + quoteIdent(name)
		grant := Result{Name: "grant SELECT on " + t, Status: StatusOK, Detail: "granted",
			Fatal: c.cfg.Source.AllowMinimalMetadata}
		table := Result{Name: "table " + t, Status: StatusOK}

		cols, err := reader.TableColumns(ctx, schema, name)
		switch {
		case err == nil:
			table = columnCheck(table, quoted, cols, mapped)
			if engine, tx, err := reader.TableEngine(ctx, schema, name); err == nil && engine != "" && !tx && table.Status == StatusOK {
				// Its rows outlive a rollback, and tailbox publishes
				// only what committed: events would be lost.
				table.Status = StatusFail
				table.Detail = fmt.Sprintf("uses the %s engine, which does not roll back: an outbox row of a rolled-back transaction stays in the table and is never published (tailbox publishes only what committed)", engine)
				table.Fix = "ALTER TABLE " + quoted + " ENGINE=InnoDB;"
			}
		case binlog.IsAccessDenied(err):
			grant.Status = StatusFail
			grant.Detail = fmt.Sprintf("SELECT is refused (%s): tailbox cannot check the table", serverMessage(err))
			if c.cfg.Source.AllowMinimalMetadata {
				grant.Detail += " nor read its column names from information_schema (source.allow_minimal_metadata)"
			}
			grant.Fix = "GRANT SELECT ON " + quoted + " TO " + acct + ";"
			table.Name = "" // cannot be checked
		case binlog.IsTableMissing(err):
			table.Status = StatusFail
			table.Detail = "does not exist"
			table.Fix = "create it, e.g. " + createTable(quoted, mapped)
			if srv.LowerCaseTableNames == 0 {
				if like, _ := reader.TablesNamedLike(ctx, schema, name); len(like) > 0 {
					table.Detail = fmt.Sprintf("does not exist; %s does, and table names are case-sensitive on this server (lower_case_table_names=0)", strings.Join(like, ", "))
					table.Fix = "set outbox.tables to the name as the server spells it: " + like[0]
				}
			}
		default:
			table.Status = StatusWarn
			table.Detail = "cannot check: " + err.Error()
			table.Fix = "run `tailbox check` again"
		}
		grants = append(grants, grant)
		if table.Name != "" {
			tables = append(tables, table)
		}
	}
	return append(grants, tables...)
}

// mappedColumn is a column the configuration maps, with its setting.
type mappedColumn struct {
	name, setting, sqlType string
}

// mappedColumns lists the columns every outbox table must have, in the
// order of outbox.fields and outbox.additional.
func (c *Connector) mappedColumns() []mappedColumn {
	f := c.cfg.Outbox.Fields
	cols := []mappedColumn{
		{f.ID, "outbox.fields.id", "CHAR(36) NOT NULL PRIMARY KEY"},
		{f.RouteBy, "outbox.fields.route_by", "VARCHAR(255) NOT NULL"},
		{f.Key, "outbox.fields.key", "VARCHAR(255) NOT NULL"},
		{f.Type, "outbox.fields.type", "VARCHAR(255) NOT NULL"},
		{f.Payload, "outbox.fields.payload", "JSON"},
	}
	if f.Timestamp != "" {
		cols = append(cols, mappedColumn{f.Timestamp, "outbox.fields.timestamp", "TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"})
	}
	for i, a := range c.cfg.Outbox.Additional {
		cols = append(cols, mappedColumn{a.Column, "outbox.additional[" + strconv.Itoa(i) + "].column", "VARCHAR(255)"})
	}
	return cols
}

// columnCheck compares a table's columns with the mapped ones; column
// names match ignoring case, as MySQL's do.
func columnCheck(r Result, quoted string, cols []string, mapped []mappedColumn) Result {
	var missing, settings, adds, present []string
	seen := map[string]bool{}
	for _, m := range mapped {
		if seen[strings.ToLower(m.name)] {
			continue
		}
		seen[strings.ToLower(m.name)] = true
		found := false
		for _, col := range cols {
			if strings.EqualFold(col, m.name) {
				found = true
				break
			}
		}
		if found {
			present = append(present, m.name)
			continue
		}
		missing = append(missing, fmt.Sprintf("%s (%s)", m.name, m.setting))
		settings = append(settings, m.setting)
		typ := m.sqlType
		if strings.HasSuffix(typ, " PRIMARY KEY") {
			typ = strings.TrimSuffix(typ, " PRIMARY KEY") // a table has one already
		}
		adds = append(adds, "ADD COLUMN "+quoteIdent(m.name)+" "+strings.Replace(typ, " NOT NULL", "", 1))
	}
	if len(missing) == 0 {
		r.Detail = "has the mapped columns " + strings.Join(present, ", ")
		return r
	}
	r.Status, r.Fatal = StatusFail, true
	r.Detail = fmt.Sprintf("has no column %s; its columns are %s", strings.Join(missing, ", "), strings.Join(cols, ", "))
	r.Fix = fmt.Sprintf("ALTER TABLE %s %s; or set %s to existing columns", quoted, strings.Join(adds, ", "), strings.Join(settings, ", "))
	return r
}

// createTable is a CREATE TABLE statement with the mapped columns.
func createTable(quoted string, mapped []mappedColumn) string {
	var cols []string
	seen := map[string]bool{}
	for _, m := range mapped {
		if !seen[strings.ToLower(m.name)] {
			seen[strings.ToLower(m.name)] = true
			cols = append(cols, quoteIdent(m.name)+" "+m.sqlType)
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
			r.Status = StatusFail
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

// checkStart checks the position run would start from without --from: the
// stored checkpoint, else start.from. It uses the very start rules of Run.
func (c *Connector) checkStart(ctx context.Context, reader *binlog.Reader, acct string) Result {
	r := Result{Name: "start position", Status: StatusOK}
	path := c.storeName()
	cp, err := c.readCheckpoint(ctx)
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		cp = nil
	case err != nil:
		r.Status = StatusFail
		r.Detail = fmt.Sprintf("the checkpoint %s cannot be used: %s", path, err)
		r.Fix = "replace it with `tailbox offsets set -c FILE --from SPEC` (run leaves the file as it is)"
		return r
	}
	p, source, err := c.startPoint(ctx, reader, cp, "")
	if err != nil {
		r.Status = StatusFail
		r.Detail = err.Error()
		switch {
		case binlog.IsAccessDenied(err):
			r.Fix = "GRANT " + replicationClientName(reader.Server()) + " ON *.* TO " + acct + ";"
		case cp != nil:
			r.Fix = "choose a position the server has with `tailbox offsets set -c FILE --from SPEC` (earliest, latest, FILE:POS, gtid:SET or time:RFC3339); events between the checkpoint and that position are not published"
		default:
			r.Fix = "set start.from to a position the server has: latest, earliest, FILE:POS, gtid:SET or time:RFC3339"
		}
		return r
	}
	r.Detail = fmt.Sprintf("%s: %s", source, p.Pos)
	if p.Skip > 0 {
		r.Detail += fmt.Sprintf(" (skip %d rows of %s)", p.Skip, p.NextTxn)
	}
	return r
}

// checkKafka connects to the brokers with the producer settings, fetches
// the metadata and starts (and closes) the producer, producing nothing.
func (c *Connector) checkKafka(ctx context.Context) Result {
	r := Result{Name: "kafka", Status: StatusOK}
	brokers := strings.Join(c.cfg.Kafka.Brokers, ",")
	pc, err := c.producerConfig()
	if err != nil {
		r.Status, r.Detail, r.Fix = StatusFail, err.Error(), "correct kafka.tls"
		return r
	}
	kctx, cancel := context.WithTimeout(ctx, kafkaCheckTimeout)
	defer cancel()
	p, err := kafka.New(kctx, pc)
	if err != nil {
		r.Status, r.Detail = StatusFail, err.Error()
		switch {
		case errors.Is(err, kafka.ErrUnreachable):
			r.Fix = "check kafka.brokers (host:port) and that a broker accepts connections from this host"
		case errors.Is(err, kafka.ErrAuthentication):
			r.Fix = "correct kafka.sasl (mechanism, user, password), or create the user with this mechanism on the brokers"
		case kctx.Err() != nil:
			r.Detail = fmt.Sprintf("no answer from kafka %s within %s: %s", brokers, kafkaCheckTimeout, err)
			r.Fix = "check kafka.brokers and that the brokers' advertised listeners are reachable from this host"
		default:
			r.Fix = "check kafka.tls and kafka.sasl against the brokers' listener, and the brokers' advertised listeners"
		}
		return r
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	_ = p.Close(cctx)
	r.Detail = brokers + " answers (metadata read, nothing produced)"
	return r
}

// preflight runs the source checks for Run: it returns an error wrapping
// ErrServerSetup that lists every fatal failure, in the text of `tailbox
// check`, and logs the other failures as warnings and the warnings as
// information (a missing outbox table may yet be created; a server_id that
// a replica uses may be this connector's own connection that the server
// has not dropped yet).
func (c *Connector) preflight(ctx context.Context, reader *binlog.Reader) error {
	var fatal []string
	for _, r := range c.sourceChecks(ctx, reader) {
		switch {
		case r.Status == StatusFail && r.Fatal:
			fatal = append(fatal, r.String())
		case r.Status == StatusFail:
			c.log.Warn().Str("check", r.Name).Str("detail", r.Detail).Str("fix", r.Fix).
				Msg("source check failed; `tailbox check` lists every item")
		case r.Status == StatusWarn:
			c.log.Info().Str("check", r.Name).Str("detail", r.Detail).Str("fix", r.Fix).
				Msg("source check warning")
		}
	}
	if len(fatal) > 0 {
		return fmt.Errorf("%w: %s is not set up for tailbox:\n%s", ErrServerSetup, c.cfg.Source.Addr, strings.Join(fatal, "\n"))
	}
	return nil
}

// privileges are global privileges from SHOW GRANTS, upper case.
type privileges map[string]bool

// has reports whether any of names, or ALL PRIVILEGES, is granted.
func (p privileges) has(names ...string) bool {
	if p["ALL PRIVILEGES"] || p["ALL"] {
		return true
	}
	for _, n := range names {
		if p[n] {
			return true
		}
	}
	return false
}

// globalPrivileges returns the privileges that lines of SHOW GRANTS grant
// ON *.*, to the user or to a role whose grants are listed.
func globalPrivileges(grants []string) privileges {
	p := privileges{}
	for _, g := range grants {
		u := strings.ToUpper(strings.TrimSpace(g))
		if !strings.HasPrefix(u, "GRANT ") {
			continue
		}
		list, rest, ok := strings.Cut(u[len("GRANT "):], " ON ")
		if !ok || !strings.HasPrefix(strings.TrimSpace(rest), "*.* TO ") {
			continue
		}
		for _, priv := range strings.Split(list, ",") {
			if priv = strings.Join(strings.Fields(priv), " "); priv != "" {
				p[priv] = true
			}
		}
	}
	return p
}

// replicationClientName is what srv calls the REPLICATION CLIENT
// privilege: BINLOG MONITOR on MariaDB 10.5.2 and later.
func replicationClientName(srv binlog.Server) string {
	if srv.Flavor == binlog.FlavorMariaDB && versionAtLeast(srv.Version, 10, 5, 2) {
		return "BINLOG MONITOR"
	}
	return "REPLICATION CLIENT"
}

// versionAtLeast reports whether a VERSION() string ("10.11.6-MariaDB-log",
// "8.0.36") is at least major.minor.patch. An unparseable version is not.
func versionAtLeast(version string, major, minor, patch int) bool {
	num, _, _ := strings.Cut(version, "-")
	parts := strings.SplitN(num, ".", 3)
	want := []int{major, minor, patch}
	for i, w := range want {
		if i >= len(parts) {
			return false
		}
		digits := parts[i]
		for j, ch := range digits {
			if ch < '0' || ch > '9' {
				digits = digits[:j]
				break
			}
		}
		n, err := strconv.Atoi(digits)
		if err != nil {
			return false
		}
		if n != w {
			return n > w
		}
	}
	return true
}

// versionFlavor is the flavor a VERSION() string names.
func versionFlavor(version string) binlog.Flavor {
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return binlog.FlavorMariaDB
	}
	return binlog.FlavorMySQL
}

func flavorName(f binlog.Flavor) string {
	if f == binlog.FlavorMariaDB {
		return "MariaDB"
	}
	return "MySQL"
}

// account quotes user and host for a GRANT statement: 'cdc'@'%'.
func account(user, host string) string {
	return sqlString(user) + "@" + sqlString(host)
}

// sqlString quotes s as an SQL string literal.
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// quoteIdent quotes a schema, table or column name with backticks.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// serverMessage is err's message without the wrapping of the query.
func serverMessage(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if rest, ok := strings.CutPrefix(s, "query "); ok {
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			return strings.TrimPrefix(rest[len(q):], ": ")
		}
	}
	return s
}
