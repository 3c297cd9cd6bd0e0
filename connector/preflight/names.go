package preflight

import (
	"strconv"
	"strings"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

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
