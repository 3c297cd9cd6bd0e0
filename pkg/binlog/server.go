package binlog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// Server describes the server a Reader or an Inspector is connected to.
type Server struct {
	// Flavor is MySQL or MariaDB, detected from the version string unless configured.
	Flavor Flavor
	// Version is the server's VERSION().
	Version string
	// ServerID is @@server_id.
	ServerID uint32
	// ServerUUID is @@server_uuid (MySQL only).
	ServerUUID string
	// BinlogBasename is the base name of @@log_bin_basename ("mysql-bin").
	BinlogBasename string
	// GTIDMode reports whether positions carry GTID sets: always on MariaDB,
	// gtid_mode=ON on MySQL.
	GTIDMode bool
	// FullMetadata reports binlog_row_metadata=FULL.
	FullMetadata bool
	// RowMetadata is @@binlog_row_metadata (FULL, MINIMAL, or NO_LOG on
	// MariaDB); "" when the server has no such variable (MySQL before
	// 8.0.1, MariaDB before 10.5).
	RowMetadata string
	// RowValueOptions is @@binlog_row_value_options ("" or PARTIAL_JSON);
	// always "" on MariaDB, which has no such variable.
	RowValueOptions string
	// LowerCaseTableNames is @@lower_case_table_names (0, 1 or 2).
	LowerCaseTableNames int
	// LogBin is @@log_bin: binary logging is on.
	LogBin bool
	// BinlogFormat is @@binlog_format (ROW, MIXED or STATEMENT).
	BinlogFormat string
	// RowImage is @@binlog_row_image (FULL, MINIMAL or NOBLOB).
	RowImage string
}

// SameServer reports whether srv is the server of recorded, the identity a
// position was read with: on MySQL by @@server_uuid when recorded has one,
// else by server_id and binlog base name. A file position means something
// only on its own server.
func SameServer(recorded, srv Server) bool {
	if srv.Flavor == FlavorMySQL && recorded.ServerUUID != "" {
		return recorded.ServerUUID == srv.ServerUUID
	}
	return recorded.ServerID == srv.ServerID && recorded.BinlogBasename == srv.BinlogBasename
}

// identity names s in messages: flavor, server_id, binlog base name and,
// on MySQL, server_uuid.
func (s Server) identity() string {
	id := fmt.Sprintf("%s server_id %d, binlog %s", s.Flavor, s.ServerID, s.BinlogBasename)
	if s.ServerUUID != "" {
		id += ", server_uuid " + s.ServerUUID
	}
	return id
}

// serverChange decides whether a stream at at, read so far from former,
// can go on from cur, the server that answers at addr now: always when cur
// is former; on another server of the same flavor only when GTIDs carry
// the position (MariaDB, MySQL with gtid_mode=ON on cur) and cur matches
// table names as former did. A file position without GTIDs (MySQL with
// gtid_mode=OFF) names a place in former's binlog, which would be read in
// cur's: the error wraps ErrServerChanged, names both servers and the fix.
func serverChange(addr string, former, cur Server, at Position) error {
	if SameServer(former, cur) && former.Flavor == cur.Flavor {
		return nil
	}
	changed := fmt.Sprintf("%s was %s and is now %s", addr, former.identity(), cur.identity())
	const fix = "; choose a position on this server with `tailbox offsets set -c FILE --from SPEC` (or `tailbox run --from SPEC`)"
	switch {
	case former.Flavor != cur.Flavor:
		return fmt.Errorf("%w: %s: a position of one flavor cannot continue on the other%s", ErrServerChanged, changed, fix)
	case at.GTID == "":
		return fmt.Errorf("%w: %s: %s is a file position without GTIDs on the former, which means nothing in the binlog of the latter%s", ErrServerChanged, changed, at, fix)
	case !cur.GTIDMode:
		return fmt.Errorf("%w: %s: the position is a GTID set, and the latter has no GTIDs (gtid_mode is not ON)%s", ErrServerChanged, changed, fix)
	case former.LowerCaseTableNames != cur.LowerCaseTableNames:
		return fmt.Errorf("%w: %s: lower_case_table_names changed from %d to %d, so captured tables would match differently%s", ErrServerChanged, changed, former.LowerCaseTableNames, cur.LowerCaseTableNames, fix)
	}
	return nil
}

// LogFile is one entry of SHOW BINARY LOGS.
type LogFile struct {
	Name string
	Size uint64
}

// conn is a plain SQL connection for metadata queries.
type conn struct {
	cfg *Config
	c   *client.Conn
}

func dial(ctx context.Context, cfg *Config) (*client.Conn, error) {
	d := &net.Dialer{Timeout: cfg.dialTimeout()}
	var opts []client.Option
	if tc := cfg.tlsConfig(ctx); tc != nil {
		opts = append(opts, func(c *client.Conn) error { c.SetTLSConfig(tc); return nil })
	}
	c, err := client.ConnectWithDialer(ctx, "tcp", cfg.Addr, cfg.User, cfg.Password, "", d.DialContext, opts...)
	if err != nil {
		if ae := loginRefused(cfg, err); ae != nil {
			return nil, ae
		}
		return nil, fmt.Errorf("connect to %s as %s: %w: %w", cfg.Addr, cfg.User, ErrConnection, err)
	}
	return c, nil
}

// Server errors that refuse a login (MySQL and MariaDB share the first
// four; an account locked is 3118 on MySQL, 4151 on MariaDB).
const (
	erHostNotPrivileged       = 1130 // ER_HOST_NOT_PRIVILEGED: no account for this host
	erNotSupportedAuthMode    = 1251 // ER_NOT_SUPPORTED_AUTH_MODE
	erMustChangePasswordLogin = 1862 // ER_MUST_CHANGE_PASSWORD_LOGIN: the password expired
	erAccountLockedMySQL      = 3118 // ER_ACCOUNT_HAS_BEEN_LOCKED
	erAccountLockedMariaDB    = 4151 // ER_ACCOUNT_HAS_BEEN_LOCKED
)

// authError is a login the server refused: it matches ErrAuthentication
// and ErrConnection, and its message is the server's, not the client
// library's call chain ("handleAuthResult: readAuthResult: ...").
type authError struct {
	addr, account string
	me            *mysql.MyError
}

func (e *authError) Error() string {
	return fmt.Sprintf("authentication failed for %s at %s: %s (server error %d): check source.user and source.password (or source.password_file), and that the server has an account for this user from this host",
		e.account, e.addr, e.me.Message, e.me.Code)
}

func (e *authError) Unwrap() []error { return []error{ErrAuthentication, ErrConnection, e.me} }

// accountInMessage finds the 'user'@'host' a server message names.
var accountInMessage = regexp.MustCompile(`'[^']*'@'[^']*'`)

// loginRefused returns err, from connecting and logging in to cfg.Addr, as
// an *authError when the server refused the login, else nil.
func loginRefused(cfg *Config, err error) error {
	var me *mysql.MyError
	if !errors.As(err, &me) {
		return nil
	}
	switch me.Code {
	case erAccessDenied, erHostNotPrivileged, erNotSupportedAuthMode, erMustChangePasswordLogin,
		erAccountLockedMySQL, erAccountLockedMariaDB:
	default:
		return nil
	}
	account := accountInMessage.FindString(me.Message)
	if account == "" {
		account = "'" + cfg.User + "'"
	}
	return &authError{addr: cfg.Addr, account: account, me: me}
}

func (c *conn) query(q string, args ...any) (*mysql.Result, error) {
	r, err := c.c.Execute(q, args...)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	return r, nil
}

// str returns the first row's column col as a string ("" when there is no row).
func str(r *mysql.Result, col int) string {
	if r == nil || r.Resultset == nil || r.RowNumber() == 0 {
		return ""
	}
	s, _ := r.GetString(0, col)
	return s
}

func (c *conn) variable(name string) (string, error) {
	r, err := c.query("SELECT @@GLOBAL." + name)
	if err != nil {
		return "", err
	}
	return str(r, 0), nil
}

func (c *conn) server(configured Flavor) (Server, error) {
	var s Server
	r, err := c.query("SELECT VERSION(), @@GLOBAL.server_id, @@GLOBAL.log_bin_basename, @@GLOBAL.lower_case_table_names")
	if err != nil {
		return s, err
	}
	s.Version = str(r, 0)
	id, _ := r.GetUint(0, 1)
	s.ServerID = uint32(id)
	base := str(r, 2)
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	s.BinlogBasename = base
	lc, _ := r.GetInt(0, 3)
	s.LowerCaseTableNames = int(lc)

	s.Flavor = configured
	if s.Flavor == FlavorUnknown {
		s.Flavor = FlavorMySQL
		if strings.Contains(strings.ToLower(s.Version), "mariadb") {
			s.Flavor = FlavorMariaDB
		}
	}
	if meta, err := c.variable("binlog_row_metadata"); err == nil {
		s.RowMetadata = meta
		s.FullMetadata = strings.EqualFold(meta, "FULL")
	}
	r, err = c.query("SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image")
	if err != nil {
		return s, err
	}
	lb, _ := r.GetInt(0, 0)
	s.LogBin = lb == 1
	s.BinlogFormat, s.RowImage = str(r, 1), str(r, 2)
	switch s.Flavor {
	case FlavorMariaDB:
		s.GTIDMode = true
	case FlavorMySQL:
		if v, err := c.variable("server_uuid"); err == nil {
			s.ServerUUID = v
		}
		if v, err := c.variable("gtid_mode"); err == nil {
			s.GTIDMode = strings.EqualFold(v, "ON")
		}
		if v, err := c.variable("binlog_row_value_options"); err == nil {
			s.RowValueOptions = v
		}
	}
	return s, nil
}

// binaryLogs runs SHOW BINARY LOGS.
func (c *conn) binaryLogs() ([]LogFile, error) {
	r, err := c.query("SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	out := make([]LogFile, 0, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		name, _ := r.GetString(i, 0)
		size, _ := r.GetUint(i, 1)
		out = append(out, LogFile{Name: name, Size: size})
	}
	return out, nil
}

// status returns the current end of the binlog (file, pos) and, where the
// server reports it in the same statement, the executed GTID set.
func (c *conn) status(f Flavor) (file string, pos uint32, gtid string, err error) {
	var r *mysql.Result
	if f == FlavorMySQL {
		// MySQL 8.4 removed SHOW MASTER STATUS; 8.0 before 8.2 lacks the new name.
		r, err = c.query("SHOW BINARY LOG STATUS")
		if err != nil {
			r, err = c.query("SHOW MASTER STATUS")
		}
	} else {
		r, err = c.query("SHOW MASTER STATUS")
	}
	if err != nil {
		return "", 0, "", err
	}
	if r.RowNumber() == 0 {
		return "", 0, "", fmt.Errorf("SHOW MASTER STATUS returned no row: binary logging (log_bin) is off")
	}
	file = str(r, 0)
	p, _ := r.GetUint(0, 1)
	if f == FlavorMySQL && r.ColumnNumber() >= 5 {
		gtid = strings.ReplaceAll(str(r, 4), "\n", "")
	}
	return file, uint32(p), gtid, nil
}

// mariadbGTIDAt returns BINLOG_GTID_POS(file, pos): the GTID state a
// replica starting at file:pos would have.
func (c *conn) mariadbGTIDAt(file string, pos uint32) (string, error) {
	r, err := c.query("SELECT BINLOG_GTID_POS(?, ?)", file, pos)
	if err != nil {
		return "", err
	}
	if r.RowNumber() == 0 {
		return "", nil
	}
	v, _ := r.GetValue(0, 0)
	if v == nil {
		return "", fmt.Errorf("%s:%d is not a valid position in the binlog: %w", file, pos, ErrPositionUnavailable)
	}
	return str(r, 0), nil
}

// infoColumns are a table's columns as information_schema lists them, in
// ordinal order: what the binlog lacks without binlog_row_metadata.
type infoColumns struct {
	names []string
	// charsets holds each column's character set; "" for columns without
	// one (numbers, dates, binary strings).
	charsets []string
}

// columns reads the names and character sets of a table's columns from
// information_schema.
func (c *conn) columns(schema, table string) (*infoColumns, error) {
	r, err := c.query("SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", schema, table)
	if err != nil {
		return nil, err
	}
	info := &infoColumns{names: make([]string, r.RowNumber()), charsets: make([]string, r.RowNumber())}
	for i := range info.names {
		info.names[i], _ = r.GetString(i, 0)
		info.charsets[i], _ = r.GetString(i, 1)
	}
	return info, nil
}

func (c *conn) close() {
	if c != nil && c.c != nil {
		_ = c.c.Close()
		c.c = nil
	}
}

// Config says how to reach the server and which tables to capture. Fields
// have no defaults other than those documented.
type Config struct {
	// Addr is the server's host:port. Required.
	Addr string
	// User and Password authenticate the replication connection.
	User     string
	Password string
	// ServerID is the replica id to register with; must be non-zero.
	ServerID uint32
	// Flavor forces the server flavor; FlavorUnknown detects it.
	Flavor Flavor
	// TLS is the TLS setting of every connection to the server; the zero
	// value is plaintext. Open and FileStartTime settle it with one login
	// (see TLSMode) before they connect.
	TLS TLS
	// Heartbeat is the heartbeat period requested from the server; zero means 10s.
	Heartbeat time.Duration
	// ReadTimeout bounds the wait for any packet; zero means 3× Heartbeat.
	ReadTimeout time.Duration
	// DialTimeout bounds connecting; zero means 10s.
	DialTimeout time.Duration
	// Tables are the captured tables as "schema.table".
	Tables []string
	// AllowMinimalMetadata allows running without binlog_row_metadata=FULL,
	// taking names from information_schema.
	AllowMinimalMetadata bool
	// ReconnectBackoff is the first wait before reconnecting after a lost
	// connection; it doubles up to 30s. Zero means 500ms.
	ReconnectBackoff time.Duration
	// MaxReconnects bounds consecutive failed reconnect attempts; zero means unlimited.
	MaxReconnects int
	// TxnBuffer bounds, in estimated bytes, the captured rows of one
	// transaction held until its end shows it committed. A transaction
	// with more is read to its end without holding them and, if it
	// committed, read again from its start, its rows handed out as read.
	// Zero means 4 MiB.
	TxnBuffer int

	// ReportHost is the host name the Reader reports when it registers as
	// a replica: SHOW REPLICAS (SHOW SLAVE HOSTS) lists it, and messages
	// about a server_id clash name it. "" means "tailbox".
	ReportHost string

	// tls is TLS as resolveTLS settled it, shared by the copies of the
	// Config; nil (not settled) is plaintext.
	tls *tlsDecision
}

func (c *Config) txnBuffer() int {
	if c.TxnBuffer > 0 {
		return c.TxnBuffer
	}
	return defaultTxnBuffer
}

func (c *Config) reportHost() string {
	if c.ReportHost != "" {
		return c.ReportHost
	}
	return "tailbox"
}

func (c *Config) dialTimeout() time.Duration {
	if c.DialTimeout > 0 {
		return c.DialTimeout
	}
	return 10 * time.Second
}

func (c *Config) heartbeat() time.Duration {
	if c.Heartbeat > 0 {
		return c.Heartbeat
	}
	return 10 * time.Second
}

func (c *Config) readTimeout() time.Duration {
	if c.ReadTimeout > 0 {
		return c.ReadTimeout
	}
	return 3 * c.heartbeat()
}

// validateAddr returns what is wrong with Addr, which every connection needs.
func (c *Config) validateAddr() []error {
	if c.Addr == "" {
		return []error{errors.New("addr is empty")}
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		return []error{fmt.Errorf("addr %q: %w", c.Addr, err)}
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return []error{fmt.Errorf("addr %q: port is not a number", c.Addr)}
	}
	return nil
}

func (c *Config) validate() error {
	errs := c.validateAddr()
	if c.ServerID == 0 {
		errs = append(errs, errors.New("server_id must be non-zero"))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("no tables to capture"))
	}
	for _, t := range c.Tables {
		if s, n, ok := strings.Cut(t, "."); !ok || s == "" || n == "" {
			errs = append(errs, fmt.Errorf("table %q is not schema.table", t))
		}
	}
	return errors.Join(errs...)
}

// Server error codes the preflight distinguishes (MySQL and MariaDB share them).
const (
	erDBAccessDenied       = 1044 // ER_DBACCESS_DENIED_ERROR
	erAccessDenied         = 1045 // ER_ACCESS_DENIED_ERROR: wrong user or password
	erBadDB                = 1049 // ER_BAD_DB_ERROR
	erTableAccessDenied    = 1142 // ER_TABLEACCESS_DENIED_ERROR
	erColumnAccessDenied   = 1143 // ER_COLUMNACCESS_DENIED_ERROR
	erNoSuchTable          = 1146 // ER_NO_SUCH_TABLE
	erSpecificAccessDenied = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR: a global privilege is missing
)

func serverCode(err error) uint16 {
	var me *mysql.MyError
	if errors.As(err, &me) {
		return me.Code
	}
	return 0
}

// IsAccessDenied reports whether err is the server refusing the account: a
// wrong user or password at connect time, or a statement refused for lack
// of a privilege.
func IsAccessDenied(err error) bool {
	switch serverCode(err) {
	case erDBAccessDenied, erAccessDenied, erTableAccessDenied, erColumnAccessDenied, erSpecificAccessDenied:
		return true
	}
	return false
}

// IsTableMissing reports whether err is the server saying that a table or
// its database does not exist.
func IsTableMissing(err error) bool {
	switch serverCode(err) {
	case erBadDB, erNoSuchTable:
		return true
	}
	return false
}

// quoteIdent quotes a schema, table or column name with backticks.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// Account returns the account the server authenticated the metadata
// connection as (CURRENT_USER(), split at its last "@" into user and host)
// and the lines of SHOW GRANTS for it, which on MariaDB include the grants
// of the current role.
func (in *Inspector) Account(ctx context.Context) (user, host string, grants []string, err error) {
	c, err := in.metaConn(ctx)
	if err != nil {
		return "", "", nil, err
	}
	res, err := c.query("SELECT CURRENT_USER()")
	if err != nil {
		return "", "", nil, err
	}
	cu := str(res, 0)
	user, host = cu, ""
	if i := strings.LastIndexByte(cu, '@'); i >= 0 {
		user, host = cu[:i], cu[i+1:]
	}
	res, err = c.query("SHOW GRANTS")
	if err != nil {
		return user, host, nil, err
	}
	for i := 0; i < res.RowNumber(); i++ {
		g, _ := res.GetString(i, 0)
		grants = append(grants, g)
	}
	return user, host, grants, nil
}

// BinaryLogs returns SHOW BINARY LOGS, oldest first. Without the
// REPLICATION CLIENT privilege (BINLOG MONITOR on MariaDB 10.5.2+) the
// error satisfies IsAccessDenied; with binary logging off it is the
// server's "You are not using binary logging".
func (in *Inspector) BinaryLogs(ctx context.Context) ([]LogFile, error) {
	c, err := in.metaConn(ctx)
	if err != nil {
		return nil, err
	}
	return c.binaryLogs()
}

// TableColumns returns the column names of schema.table in table order,
// read from the result of SELECT * FROM `schema`.`table` LIMIT 0, so that
// the server applies its own privilege checks and its
// lower_case_table_names rule to the name. A missing table or database
// gives an error for which IsTableMissing is true; a missing SELECT
// privilege one for which IsAccessDenied is true (the server says so also
// for a table that does not exist).
func (in *Inspector) TableColumns(ctx context.Context, schema, table string) ([]string, error) {
	c, err := in.metaConn(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.query("SELECT * FROM " + quoteIdent(schema) + "." + quoteIdent(table) + " LIMIT 0")
	if err != nil {
		return nil, err
	}
	var names []string
	if res.Resultset != nil {
		for _, f := range res.Fields {
			names = append(names, string(f.Name))
		}
	}
	return names, nil
}

// TableEngine returns the storage engine of schema.table and whether it
// supports transactions (information_schema.ENGINES), "" when the table is
// not visible to the account there.
func (in *Inspector) TableEngine(ctx context.Context, schema, table string) (engine string, transactional bool, err error) {
	c, err := in.metaConn(ctx)
	if err != nil {
		return "", false, err
	}
	res, err := c.query("SELECT t.ENGINE, COALESCE(e.TRANSACTIONS, '') FROM information_schema.TABLES t LEFT JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE WHERE t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ?", schema, table)
	if err != nil {
		return "", false, fmt.Errorf("read the engine of %s.%s: %w", schema, table, err)
	}
	if res.RowNumber() == 0 {
		return "", false, nil
	}
	engine, _ = res.GetString(0, 0)
	tx, _ := res.GetString(0, 1)
	return engine, strings.EqualFold(tx, "YES"), nil
}

// TablesNamedLike returns, as "schema.table", the tables visible to the
// account in information_schema whose schema and name equal schema and
// table ignoring case: what a name that does not exist with this case
// probably meant.
func (in *Inspector) TablesNamedLike(ctx context.Context, schema, table string) ([]string, error) {
	c, err := in.metaConn(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.query("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE LOWER(TABLE_SCHEMA) = LOWER(?) AND LOWER(TABLE_NAME) = LOWER(?) ORDER BY TABLE_SCHEMA, TABLE_NAME", schema, table)
	if err != nil {
		return nil, err
	}
	if res.RowNumber() == 0 {
		return nil, nil
	}
	return qualifiedNames(res), nil
}

// TableNames returns, as "schema.table", the base tables visible to the
// account in information_schema outside the server's own schemas (mysql,
// information_schema, performance_schema, sys), at most limit of them: the
// names a misspelled outbox table is compared with.
func (in *Inspector) TableNames(ctx context.Context, limit int) ([]string, error) {
	c, err := in.metaConn(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.query("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY TABLE_SCHEMA, TABLE_NAME LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("list the tables: %w", err)
	}
	return qualifiedNames(res), nil
}

// qualifiedNames returns the "schema.table" names of the rows of res, whose
// first two columns are a schema and a table name.
func qualifiedNames(res *mysql.Result) []string {
	out := make([]string, 0, res.RowNumber())
	for i := 0; i < res.RowNumber(); i++ {
		s, _ := res.GetString(i, 0)
		t, _ := res.GetString(i, 1)
		out = append(out, s+"."+t)
	}
	return out
}

// Replica is one replica registered with the server (a row of SHOW
// REPLICAS or SHOW SLAVE HOSTS).
type Replica struct {
	// ServerID is the replica's server_id.
	ServerID uint32
	// Host and Port are what the replica reported (report_host and
	// report_port; a Reader reports Config.ReportHost).
	Host string
	Port uint32
}

// Replicas lists the replicas connected to the server: SHOW REPLICAS on
// MySQL 8.0.22+, else SHOW SLAVE HOSTS. MariaDB 10.5.2+ requires the
// REPLICATION MASTER ADMIN privilege for it (an error for which
// IsAccessDenied is true), MySQL REPLICATION SLAVE.
func (in *Inspector) Replicas(ctx context.Context) ([]Replica, error) {
	c, err := in.metaConn(ctx)
	if err != nil {
		return nil, err
	}
	var res *mysql.Result
	if in.srv.Flavor == FlavorMySQL {
		res, err = c.query("SHOW REPLICAS")
		if err != nil && !IsAccessDenied(err) {
			res, err = c.query("SHOW SLAVE HOSTS")
		}
	} else {
		res, err = c.query("SHOW SLAVE HOSTS")
	}
	if err != nil {
		return nil, err
	}
	col := func(name string) int {
		for i, f := range res.Fields {
			if strings.EqualFold(string(f.Name), name) {
				return i
			}
		}
		return -1
	}
	idCol, hostCol, portCol := col("Server_id"), col("Host"), col("Port")
	if idCol < 0 {
		return nil, fmt.Errorf("list replicas: no Server_id column in the result")
	}
	out := make([]Replica, 0, res.RowNumber())
	for i := 0; i < res.RowNumber(); i++ {
		var rep Replica
		id, _ := res.GetUint(i, idCol)
		rep.ServerID = uint32(id)
		if hostCol >= 0 {
			rep.Host, _ = res.GetString(i, hostCol)
		}
		if portCol >= 0 {
			p, _ := res.GetUint(i, portCol)
			rep.Port = uint32(p)
		}
		out = append(out, rep)
	}
	return out, nil
}
