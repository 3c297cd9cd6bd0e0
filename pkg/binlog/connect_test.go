package binlog_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// A wrong password is a refused login, ErrAuthentication (and, being
// retriable, ErrConnection), named as the server saw the account, with the
// fix and without the client library's call chain.
func TestWrongPasswordIsAnAuthenticationError(t *testing.T) {
	db := testenv.MySQL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		open func(binlog.Config) error
	}{
		{"Inspect", func(cfg binlog.Config) error {
			in, err := binlog.Inspect(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)))
			if err == nil {
				in.Close()
			}
			return err
		}},
		{"Open", func(cfg binlog.Config) error {
			r, err := binlog.Open(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)), nil)
			if err == nil {
				r.Close()
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.open(binlog.Config{Addr: db.Addr, User: db.User, Password: "wrong-" + db.Password, ServerID: 4183, Tables: []string{"a.b"}})
			if !errors.Is(err, binlog.ErrAuthentication) || !errors.Is(err, binlog.ErrConnection) || !binlog.IsAccessDenied(err) {
				t.Fatalf("got %v, want ErrAuthentication, ErrConnection and IsAccessDenied", err)
			}
			msg := err.Error()
			for _, want := range []string{"authentication failed for '" + db.User + "'@'", " at " + db.Addr, "Access denied for user", "(server error 1045)", "check source.user and source.password"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
			if strings.Contains(msg, "AuthResult") || strings.Contains(msg, "wrong-") {
				t.Errorf("message %q names go-mysql's functions or the password", msg)
			}
		})
	}
}
