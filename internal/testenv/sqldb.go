package testenv

import (
	"database/sql"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// DB opens a database/sql handle (go-sql-driver/mysql, what Go services
// use) on m with database as its default database ("" for none), closed at
// t's cleanup. Its time values are parsed as UTC time.Time.
func (m *MySQLServer) DB(t testing.TB, database string) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = m.User, m.Password, database
	cfg.Net, cfg.Addr = "tcp", m.Addr
	cfg.ParseTime = true
	cfg.Timeout = dialTimeout
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("database/sql connector for %s: %v", m.Addr, err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("connect to %s with database/sql: %v", m.Addr, err)
	}
	return db
}
