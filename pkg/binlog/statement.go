package binlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/mysql"
	// The parser builds literal values through a driver; the test driver is
	// the light one go-mysql's canal uses too.
	_ "github.com/pingcap/tidb/pkg/parser/test_driver"
)

// statementKind says what a QUERY event's statement does to the captured
// tables.
type statementKind int

const (
	// stmtOther touches no captured table's rows or definition: stream on.
	stmtOther statementKind = iota
	// stmtAltersCaptured changes (or may change) the definition of a
	// captured table: ALTER, RENAME, DROP, TRUNCATE, CREATE TABLE, CREATE or
	// DROP INDEX, sequences. The reader forgets cached column names, and
	// stops without binlog_row_metadata=FULL.
	stmtAltersCaptured
	// stmtWritesCaptured writes rows of a captured table as a statement
	// (INSERT, REPLACE, UPDATE, DELETE, LOAD DATA, CREATE TABLE ... SELECT):
	// the rows are not in the binlog, so the reader stops.
	stmtWritesCaptured
)

func (k statementKind) String() string {
	switch k {
	case stmtOther:
		return "other"
	case stmtAltersCaptured:
		return "alters captured"
	case stmtWritesCaptured:
		return "writes captured"
	}
	return "unknown"
}

// statement is what classifyStatement found.
type statement struct {
	kind statementKind
	// tables are the captured tables concerned, "schema.table" as configured
	// (lowercase where lower_case_table_names is not 0), in statement order.
	tables []string
	// parsed is false when the SQL parser rejected the text (MariaDB-only
	// syntax, for one) and the fallback tokenizer classified it.
	parsed bool
}

// classifyStatement says whether a QUERY event's statement writes rows of a
// captured table or changes one's definition. defaultSchema is the event's
// schema (the session's USE), sqlMode its sql_mode (ANSI_QUOTES and
// NO_BACKSLASH_ESCAPES change how the text is lexed), captured the
// configured schema/table pairs, compared as lower_case_table_names does:
// exactly when it is 0, case-insensitively otherwise.
//
// Comments are ignored; executable comments (/*!NNNNN ...*/, MariaDB's
// /*M!NNNNNN ...*/) count as statement text whatever their version number,
// since the servers tailbox reads execute every version-gated comment that
// mysqldump and the migration tools write; /*T! ...*/ (TiDB) and optimizer
// hints are comments to MySQL and MariaDB.
//
// A statement that cannot name a captured table (none of their names occurs
// in the text) is stmtOther without parsing. Otherwise the statement is
// parsed with the TiDB parser; when that fails (MariaDB-only syntax such as
// CREATE OR REPLACE TABLE, ALTER ONLINE TABLE or RETURNING), a tokenizer
// that honours the same comments, literals and quoted identifiers reads the
// leading verb and the table names in its target positions: for DML it may
// report a captured table that is only read (a join in a multi-table UPDATE
// or DELETE) but never misses one that is written; for DDL it reports only
// the tables the statement creates, alters, renames, drops or truncates.
func classifyStatement(defaultSchema string, query []byte, sqlMode mysql.SQLMode, lowerCaseTableNames int, captured [][2]string) statement {
	m := tableMatcher{fold: lowerCaseTableNames != 0, captured: captured, defaultSchema: defaultSchema}
	if !m.mentioned(query) {
		return statement{kind: stmtOther, parsed: true}
	}
	text := stripComments(query, sqlMode)
	if st, ok := classifyParsed(text, sqlMode, &m); ok {
		return st
	}
	return classifyTokens(text, sqlMode, &m)
}

// lexModes are the sql_mode flags that change how statement text is read.
const lexModes = mysql.ModeANSIQuotes | mysql.ModeNoBackslashEscapes | mysql.ModePipesAsConcat | mysql.ModeIgnoreSpace | mysql.ModeHighNotPrecedence

// querySQLMode returns the sql_mode a QUERY event's status variables carry
// (Q_SQL_MODE_CODE), or 0 when they carry none. Servers write Q_FLAGS2_CODE
// then Q_SQL_MODE_CODE first, so only those two codes are read.
func querySQLMode(statusVars []byte) mysql.SQLMode {
	for i := 0; i < len(statusVars); {
		switch statusVars[i] {
		case 0: // Q_FLAGS2_CODE: 4 bytes
			i += 5
		case 1: // Q_SQL_MODE_CODE: 8 bytes
			if i+9 > len(statusVars) {
				return 0
			}
			return mysql.SQLMode(binary.LittleEndian.Uint64(statusVars[i+1:])) & lexModes
		default:
			return 0
		}
	}
	return 0
}

// tableMatcher compares table names with the captured ones.
type tableMatcher struct {
	fold          bool
	captured      [][2]string
	defaultSchema string
}

// mentioned reports whether any captured table name occurs in q: when none
// does, the statement cannot refer to one (identifiers have no escapes but
// doubled quote characters, which table names tailbox captures do not hold).
func (m *tableMatcher) mentioned(q []byte) bool {
	for _, c := range m.captured {
		if m.fold {
			if indexFold(q, c[1]) >= 0 {
				return true
			}
		} else if bytes.Contains(q, []byte(c[1])) {
			return true
		}
	}
	return false
}

// indexFold is a case-insensitive strings.Index for a needle that the
// caller lowercased or will compare by Unicode simple folding.
func indexFold(q []byte, needle string) int {
	n := len(needle)
	if n == 0 {
		return 0
	}
	ascii := true
	for i := 0; i < n; i++ {
		if needle[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		return strings.Index(strings.ToLower(string(q)), strings.ToLower(needle))
	}
	for i := 0; i+n <= len(q); i++ {
		j := 0
		for ; j < n; j++ {
			a, b := q[i+j], needle[j]
			if a == b {
				continue
			}
			if 'A' <= a && a <= 'Z' {
				a += 'a' - 'A'
			}
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			if a != b {
				break
			}
		}
		if j == n {
			return i
		}
	}
	return -1
}

// match returns the configured "schema.table" that schema.table names (an
// empty schema is the default schema), or "".
func (m *tableMatcher) match(schema, table string) string {
	if schema == "" {
		schema = m.defaultSchema
	}
	for _, c := range m.captured {
		if m.fold && strings.EqualFold(c[0], schema) && strings.EqualFold(c[1], table) ||
			!m.fold && c[0] == schema && c[1] == table {
			return c[0] + "." + c[1]
		}
	}
	return ""
}

// sameName compares two table names or aliases as the server does.
func (m *tableMatcher) sameName(a, b string) bool {
	if m.fold {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// stripComments returns q with comments replaced by a space and the
// markers of executable comments (/*!NNNNN, /*M!NNNNNN and their */)
// removed, leaving their content. String literals and quoted identifiers
// are copied as they are. Text without comments is returned without a copy.
func stripComments(q []byte, sqlMode mysql.SQLMode) string {
	noBackslash := sqlMode&mysql.ModeNoBackslashEscapes != 0
	var out []byte // nil until the first comment
	last := 0      // q[last:i] still has to be copied to out
	cut := func(from, to int) {
		if out == nil {
			out = make([]byte, 0, len(q))
		}
		out = append(out, q[last:from]...)
		out = append(out, ' ')
		last = to
	}
	inExec := false
	for i := 0; i < len(q); {
		switch c := q[i]; {
		case c == '\'' || c == '"' || c == '`':
			i = skipQuoted(q, i, c != '`' && !noBackslash)
		case c == '#' || c == '-' && i+1 < len(q) && q[i+1] == '-' && (i+2 == len(q) || q[i+2] <= ' '):
			end := i
			for end < len(q) && q[end] != '\n' {
				end++
			}
			cut(i, end)
			i = end
		case c == '*' && inExec && i+1 < len(q) && q[i+1] == '/':
			cut(i, i+2)
			i += 2
			inExec = false
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := i + 2
			exec := false
			switch {
			case j < len(q) && q[j] == '!':
				exec, j = true, j+1
			case j+1 < len(q) && (q[j] == 'M' || q[j] == 'm') && q[j+1] == '!':
				exec, j = true, j+2
			}
			if exec && !inExec {
				for k := 0; k < 6 && j < len(q) && '0' <= q[j] && q[j] <= '9'; k++ {
					j++
				}
				cut(i, j)
				i = j
				inExec = true
				continue
			}
			end := bytes.Index(q[i+2:], []byte("*/"))
			if end < 0 {
				end = len(q)
			} else {
				end += i + 4
			}
			cut(i, end)
			i = end
		default:
			i++
		}
	}
	if out == nil {
		return string(q)
	}
	return string(append(out, q[last:]...))
}

// skipQuoted returns the index after the quoted text that starts at q[i]:
// a doubled quote character stands for itself and, where backslash is set,
// a backslash escapes the next byte. An unterminated quote runs to the end.
func skipQuoted[T string | []byte](q T, i int, backslash bool) int {
	quote := q[i]
	for i++; i < len(q); i++ {
		switch q[i] {
		case '\\':
			if backslash {
				i++
			}
		case quote:
			if i+1 < len(q) && q[i+1] == quote {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(q)
}

var parsers = sync.Pool{New: func() any { return parser.New() }}

// classifyParsed classifies text with the TiDB parser; ok is false when it
// cannot parse the text.
func classifyParsed(text string, sqlMode mysql.SQLMode, m *tableMatcher) (st statement, ok bool) {
	p := parsers.Get().(*parser.Parser)
	stmts, err := parse(p, text, sqlMode)
	if !errors.Is(err, errParserPanic) {
		parsers.Put(p)
	}
	if err != nil {
		return statement{}, false
	}
	st.parsed = true
	for _, s := range stmts {
		kind, tables := classifyNode(s, m)
		if kind > st.kind {
			st.kind, st.tables = kind, nil
		}
		if kind == st.kind && kind != stmtOther {
			st.tables = appendNew(st.tables, tables...)
		}
	}
	return st, true
}

// errParserPanic marks a panic inside the parser, after which the parser is
// not reused.
var errParserPanic = errors.New("parser panic")

// parse runs p on text. A panic inside the parser is returned as an error
// wrapping errParserPanic: the tokenizer still classifies the statement, and
// a statement the server executed never stops the stream that way.
func parse(p *parser.Parser, text string, sqlMode mysql.SQLMode) (stmts []ast.StmtNode, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %v", errParserPanic, v)
		}
	}()
	p.SetSQLMode(sqlMode)
	stmts, _, err = p.ParseSQL(text)
	return stmts, err
}

// classifyNode classifies one parsed statement.
func classifyNode(s ast.StmtNode, m *tableMatcher) (statementKind, []string) {
	var written, altered []string
	add := func(list *[]string, t *ast.TableName) {
		if t != nil {
			if c := m.match(t.Schema.O, t.Name.O); c != "" {
				*list = appendNew(*list, c)
			}
		}
	}
	switch s := s.(type) {
	case *ast.InsertStmt:
		if s.Table != nil {
			for _, ref := range tableRefs(s.Table.TableRefs, nil) {
				add(&written, ref.name)
			}
		}
	case *ast.UpdateStmt:
		// MultipleTable is only set for a comma list; a JOIN is multi-table too.
		written = dmlTargets(m, s.TableRefs, s.With, updatedAliases(s), true)
	case *ast.DeleteStmt:
		var targets []string
		if s.IsMultiTable && s.Tables != nil {
			targets = []string{}
			for _, t := range s.Tables.Tables {
				targets = append(targets, qualified(t.Schema.O, t.Name.O))
			}
		}
		written = dmlTargets(m, s.TableRefs, s.With, targets, s.IsMultiTable)
	case *ast.LoadDataStmt:
		add(&written, s.Table)
	case *ast.ImportIntoStmt:
		add(&written, s.Table)
	case *ast.NonTransactionalDMLStmt:
		if s.DMLStmt != nil {
			return classifyNode(s.DMLStmt, m)
		}
	case *ast.CreateTableStmt:
		if s.TemporaryKeyword != ast.TemporaryNone {
			// A temporary table is never logged as rows; it only shadows
			// the captured table in its own session.
			break
		}
		if s.Select != nil {
			add(&written, s.Table)
		} else {
			add(&altered, s.Table)
		}
	case *ast.AlterTableStmt:
		add(&altered, s.Table)
		for _, spec := range s.Specs {
			add(&altered, spec.NewTable)
		}
	case *ast.RenameTableStmt:
		for _, tt := range s.TableToTables {
			add(&altered, tt.OldTable)
			add(&altered, tt.NewTable)
		}
	case *ast.DropTableStmt:
		if !s.IsView && s.TemporaryKeyword == ast.TemporaryNone {
			for _, t := range s.Tables {
				add(&altered, t)
			}
		}
	case *ast.TruncateTableStmt:
		add(&altered, s.Table)
	case *ast.CreateIndexStmt:
		add(&altered, s.Table)
	case *ast.DropIndexStmt:
		add(&altered, s.Table)
	case *ast.CreateSequenceStmt:
		add(&altered, s.Name)
	case *ast.AlterSequenceStmt:
		add(&altered, s.Name)
	case *ast.DropSequenceStmt:
		for _, t := range s.Sequences {
			add(&altered, t)
		}
	}
	switch {
	case len(written) > 0:
		return stmtWritesCaptured, written
	case len(altered) > 0:
		return stmtAltersCaptured, altered
	}
	return stmtOther, nil
}

// updatedAliases returns the table qualifiers of an UPDATE's assignments,
// or nil when one assignment has none (it may set a column of any table
// in the join).
func updatedAliases(s *ast.UpdateStmt) []string {
	targets := []string{}
	for _, a := range s.List {
		if a.Column == nil || a.Column.Table.O == "" {
			return nil
		}
		targets = append(targets, qualified(a.Column.Schema.O, a.Column.Table.O))
	}
	return targets
}

// dmlTargets returns the captured tables an UPDATE or DELETE writes. refs is
// its table references; with multi and more than one table in refs, targets
// names the written tables by alias or [schema.]name (nil: any table in refs
// may be written); else every table in refs is written.
func dmlTargets(m *tableMatcher, refs *ast.TableRefsClause, with *ast.WithClause, targets []string, multi bool) []string {
	if refs == nil {
		return nil
	}
	var out []string
	all := tableRefs(refs.TableRefs, nil)
	multi = multi && len(all) > 1
	for _, ref := range all {
		if ref.name.Schema.O == "" && isCTE(m, with, ref.name.Name.O) {
			continue
		}
		c := m.match(ref.name.Schema.O, ref.name.Name.O)
		if c == "" {
			continue
		}
		if multi && targets != nil && !refTargeted(m, ref, targets) {
			continue
		}
		out = appendNew(out, c)
	}
	return out
}

// refTargeted reports whether one of targets (alias or [schema.]table)
// names ref.
func refTargeted(m *tableMatcher, ref tableRef, targets []string) bool {
	for _, t := range targets {
		schema, name, ok := strings.Cut(t, "\x00")
		if !ok {
			schema, name = "", t
		}
		switch {
		case ref.alias != "":
			// A table with an alias is named by its alias only.
			if schema == "" && m.sameName(name, ref.alias) {
				return true
			}
		case schema == "":
			if m.sameName(name, ref.name.Name.O) {
				return true
			}
		default:
			rs := ref.name.Schema.O
			if rs == "" {
				rs = m.defaultSchema
			}
			if m.sameName(schema, rs) && m.sameName(name, ref.name.Name.O) {
				return true
			}
		}
	}
	return false
}

// qualified joins an optional schema and a name for refTargeted.
func qualified(schema, name string) string {
	if schema == "" {
		return name
	}
	return schema + "\x00" + name
}

func isCTE(m *tableMatcher, with *ast.WithClause, name string) bool {
	if with == nil {
		return false
	}
	for _, cte := range with.CTEs {
		if m.sameName(cte.Name.O, name) {
			return true
		}
	}
	return false
}

// tableRef is a base table in a FROM or UPDATE clause.
type tableRef struct {
	name  *ast.TableName
	alias string
}

// tableRefs appends the base tables of a join tree (derived tables and
// subqueries are read, never written, and are left out).
func tableRefs(n ast.ResultSetNode, out []tableRef) []tableRef {
	switch n := n.(type) {
	case *ast.Join:
		if n == nil {
			return out
		}
		out = tableRefs(n.Left, out)
		out = tableRefs(n.Right, out)
	case *ast.TableSource:
		if t, ok := n.Source.(*ast.TableName); ok {
			out = append(out, tableRef{name: t, alias: n.AsName.O})
		} else if j, ok := n.Source.(*ast.Join); ok {
			out = tableRefs(j, out)
		}
	case *ast.TableName:
		out = append(out, tableRef{name: n})
	}
	return out
}

func appendNew(list []string, names ...string) []string {
next:
	for _, n := range names {
		for _, have := range list {
			if have == n {
				continue next
			}
		}
		list = append(list, n)
	}
	return list
}

// sqlToken is a token of the fallback tokenizer.
type sqlToken struct {
	// kind is 'w' for a word, 'q' for a backquoted or double-quoted token
	// (an identifier, or a string that cannot stand where a table name
	// does), 's' for a single-quoted string, 'p' for punctuation.
	kind  byte
	text  string // a word as written, a quoted token unquoted, punctuation
	depth int    // parenthesis depth
}

// tokenize splits comment-free text into words, quoted tokens and
// punctuation bytes.
func tokenize(text string, sqlMode mysql.SQLMode) []sqlToken {
	noBackslash := sqlMode&mysql.ModeNoBackslashEscapes != 0
	var toks []sqlToken
	depth := 0
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c <= ' ':
			i++
		case c == '\'' || c == '"' || c == '`':
			end := skipQuoted(text, i, c != '`' && !noBackslash)
			inner := text[i+1 : end]
			if len(inner) > 0 && inner[len(inner)-1] == c {
				inner = inner[:len(inner)-1]
			}
			kind := byte('q')
			if c == '\'' {
				kind = 's'
			} else {
				inner = strings.ReplaceAll(inner, string([]byte{c, c}), string(c))
			}
			toks = append(toks, sqlToken{kind: kind, text: inner, depth: depth})
			i = end
		case isWordByte(c):
			j := i
			for j < len(text) && isWordByte(text[j]) {
				j++
			}
			toks = append(toks, sqlToken{kind: 'w', text: text[i:j], depth: depth})
			i = j
		default:
			if c == ')' && depth > 0 {
				depth--
			}
			toks = append(toks, sqlToken{kind: 'p', text: text[i : i+1], depth: depth})
			if c == '(' {
				depth++
			}
			i++
		}
	}
	return toks
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= utf8.RuneSelf
}

// tokenReader walks the fallback tokens.
type tokenReader struct {
	toks []sqlToken
	i    int
}

func (r *tokenReader) done() bool { return r.i >= len(r.toks) }

// is reports whether the next token is the keyword kw (case-insensitive).
func (r *tokenReader) is(kw string) bool {
	return !r.done() && r.toks[r.i].kind == 'w' && strings.EqualFold(r.toks[r.i].text, kw)
}

// accept consumes the next tokens while they are keywords of kws and
// reports whether it consumed any.
func (r *tokenReader) accept(kws ...string) bool {
	any := false
	for again := true; again; {
		again = false
		for _, kw := range kws {
			if r.is(kw) {
				r.i++
				any, again = true, true
			}
		}
	}
	return any
}

// name reads [schema.]table at the current token; ok is false when no
// name starts there.
func (r *tokenReader) name() (schema, table string, ok bool) {
	if r.done() || r.toks[r.i].kind == 'p' || r.toks[r.i].kind == 's' {
		return "", "", false
	}
	table = r.toks[r.i].text
	r.i++
	if r.i+1 < len(r.toks) && r.toks[r.i].text == "." && r.toks[r.i].kind == 'p' && (r.toks[r.i+1].kind == 'w' || r.toks[r.i+1].kind == 'q') {
		schema, table = table, r.toks[r.i+1].text
		r.i += 2
	}
	return schema, table, true
}

// classifyTokens is the fallback for statements the parser rejects.
func classifyTokens(text string, sqlMode mysql.SQLMode, m *tableMatcher) statement {
	r := &tokenReader{toks: tokenize(text, sqlMode)}
	for !r.done() && r.toks[r.i].text == "(" {
		r.i++
	}
	var written, altered []string
	target := func(list *[]string) {
		if s, t, ok := r.name(); ok {
			if c := m.match(s, t); c != "" {
				*list = appendNew(*list, c)
			}
		}
	}
	// anyName adds every captured name from the current token up to the
	// first of stop at depth 0.
	anyName := func(list *[]string, stop ...string) {
		depth := r.toks[min(r.i, len(r.toks)-1)].depth
		for !r.done() {
			tk, at := r.toks[r.i], r.i
			if tk.depth == depth && tk.kind == 'w' {
				for _, s := range stop {
					if strings.EqualFold(tk.text, s) {
						return
					}
				}
			}
			if _, _, ok := r.name(); !ok {
				r.i++
				continue
			}
			r.i = at
			target(list)
		}
	}
	if r.accept("WITH") {
		// Skip the common table expressions to the statement's verb.
		depth := r.toks[r.i-1].depth
		for !r.done() && !(r.toks[r.i].depth == depth && (r.is("INSERT") || r.is("REPLACE") || r.is("UPDATE") || r.is("DELETE") || r.is("SELECT"))) {
			r.i++
		}
	}
	switch {
	case r.accept("INSERT", "REPLACE"):
		r.accept("LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO")
		target(&written)
	case r.accept("UPDATE"):
		anyName(&written, "SET")
	case r.accept("DELETE"):
		anyName(&written, "WHERE", "ORDER", "LIMIT", "RETURNING")
	case r.accept("LOAD"):
		for !r.done() && !r.is("INTO") {
			r.i++
		}
		r.accept("INTO")
		r.accept("TABLE")
		target(&written)
	case r.accept("CREATE"):
		r.accept("OR", "REPLACE", "UNIQUE", "FULLTEXT", "SPATIAL", "ONLINE", "OFFLINE")
		switch {
		case r.accept("TEMPORARY"):
			// Temporary tables: see classifyNode.
		case r.accept("TABLE"):
			r.accept("IF", "NOT", "EXISTS")
			var t []string
			target(&t)
			for ; !r.done(); r.i++ {
				if r.is("SELECT") {
					written = t
					break
				}
			}
			if written == nil {
				altered = t
			}
		case r.accept("SEQUENCE"):
			r.accept("IF", "NOT", "EXISTS")
			target(&altered)
		case r.accept("INDEX"):
			for !r.done() && !r.is("ON") {
				r.i++
			}
			r.accept("ON")
			target(&altered)
		}
	case r.accept("ALTER"):
		r.accept("ONLINE", "OFFLINE", "IGNORE")
		switch {
		case r.accept("TABLE"):
			r.accept("IF", "EXISTS")
			target(&altered)
			for !r.done() {
				if r.accept("RENAME") {
					if r.accept("TO", "AS") || !r.is("COLUMN") && !r.is("INDEX") && !r.is("KEY") {
						target(&altered)
					}
					continue
				}
				r.i++
			}
		case r.accept("SEQUENCE"):
			r.accept("IF", "EXISTS")
			target(&altered)
		}
	case r.accept("DROP"):
		switch {
		case r.accept("TEMPORARY"):
			// Temporary tables: see classifyNode.
		case r.accept("TABLE", "TABLES", "SEQUENCE"):
			r.accept("IF", "EXISTS")
			anyName(&altered) // WAIT n, NOWAIT, RESTRICT, CASCADE name no table
		case r.accept("INDEX"):
			for !r.done() && !r.is("ON") {
				r.i++
			}
			r.accept("ON")
			target(&altered)
		}
	case r.accept("RENAME"):
		if r.accept("TABLE", "TABLES") {
			r.accept("IF", "EXISTS")
			anyName(&altered) // MariaDB allows WAIT n before TO
		}
	case r.accept("TRUNCATE"):
		r.accept("TABLE")
		target(&altered)
	}
	switch {
	case len(written) > 0:
		return statement{kind: stmtWritesCaptured, tables: written}
	case len(altered) > 0:
		return statement{kind: stmtAltersCaptured, tables: altered}
	}
	return statement{kind: stmtOther}
}
