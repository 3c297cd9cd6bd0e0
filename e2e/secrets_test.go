package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// secretNeedles returns what must never appear in tailbox's output for
// secret: the secret itself, its hex, and its base64 (standard and URL
// alphabets) at each of the three byte alignments it can have inside a
// longer base64 text.
func secretNeedles(secret string) []string {
	needles := []string{secret, hex.EncodeToString([]byte(secret))}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for pad := 0; pad < 3; pad++ {
			s := enc.EncodeToString(append(make([]byte, pad), secret...))
			start := 0
			if pad > 0 {
				start = 4 // the first group mixes in the padding bytes
			}
			needles = append(needles, s[start:len(s)-4]) // the last group may hold padding
		}
	}
	slices.Sort(needles)
	return slices.Compact(needles)
}

func TestSecretNeedlesFindEveryEncoding(t *testing.T) {
	const secret = "pw-0123456789abcdef"
	needles := secretNeedles(secret)
	found := func(text string) bool {
		return slices.ContainsFunc(needles, func(n string) bool { return strings.Contains(text, n) })
	}
	for prefix := range 6 {
		for suffix := range 3 {
			raw := strings.Repeat("\x00", prefix) + secret + strings.Repeat("x", suffix)
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
				if text := enc.EncodeToString([]byte(raw)); !found(text) {
					t.Errorf("%d bytes before, %d after: base64 %s not found", prefix, suffix, text)
				}
			}
		}
	}
	if !found(hex.EncodeToString([]byte("user\x00"+secret))) || !found("password="+secret) {
		t.Error("hex or plain secret not found")
	}
	if found("password=[redacted]") {
		t.Error("a needle matches text without the secret")
	}
}

// cmdOutput is one command's stdout and stderr.
type cmdOutput struct {
	what, stdout, stderr string
}

// TestSecretsNeverPrinted runs every command that reads the configuration
// — streaming with events, --dry-run, offsets show and set, check, a login
// MariaDB refuses, a SASL login Kafka refuses, a configuration error —
// with distinctive MySQL and SASL passwords from environment variables and
// from password files, at log level debug, and finds neither password (nor
// its hex or base64) in anything printed.
func TestSecretsNeverPrinted(t *testing.T) {
	mysqlSecret := "mysql-" + secretHex(t, 12) + "-S3cr3t"
	saslSecret := "sasl-" + secretHex(t, 12) + "-S3cr3t"
	const saslUser = "tailbox-secrets"

	db := testenv.MySQL(t)
	dbn := db.CreateDatabase(t, "secrets")
	db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
	mysqlUser := "sec_" + secretHex(t, 4)
	db.Exec(t, fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'", mysqlUser, mysqlSecret))
	t.Cleanup(func() { db.Exec(t, fmt.Sprintf("DROP USER IF EXISTS '%s'@'127.0.0.1'", mysqlUser)) })
	db.Exec(t, fmt.Sprintf("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '%s'@'127.0.0.1'", mysqlUser))
	db.Exec(t, fmt.Sprintf("GRANT SELECT ON %s.* TO '%s'@'127.0.0.1'", dbn, mysqlUser))

	k := testenv.Kafka(t, kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", saslUser, saslSecret), kfake.Superuser("PLAIN", saslUser, saslSecret))
	k.ClientOpts = []kgo.Opt{kgo.SASL(scram.Auth{User: saslUser, Pass: saslSecret}.AsSha512Mechanism())}

	secretFile := func(t *testing.T, secret string) string {
		p := filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	variants := []struct {
		name, mechanism string
		// lines returns the user and password lines of source: and
		// kafka.sasl for the MySQL user and the SASL user su.
		lines func(t *testing.T, user, su string) (source, sasl string)
	}{
		{"from environment variables", "SCRAM-SHA-512", func(t *testing.T, user, su string) (string, string) {
			t.Setenv("SEC_MYSQL_PASSWORD", mysqlSecret)
			t.Setenv("SEC_SASL_PASSWORD", saslSecret)
			return fmt.Sprintf("  user: %s\n  password: ${SEC_MYSQL_PASSWORD}", user),
				fmt.Sprintf("  sasl: {mechanism: SCRAM-SHA-512, user: %s, password: \"${SEC_SASL_PASSWORD}\"}", su)
		}},
		{"from password files", "PLAIN", func(t *testing.T, user, su string) (string, string) {
			return fmt.Sprintf("  user: %s\n  password_file: %s", user, secretFile(t, mysqlSecret)),
				fmt.Sprintf("  sasl: {mechanism: PLAIN, user: %s, password_file: %q}", su, secretFile(t, saslSecret))
		}},
	}

	for vi, v := range variants {
		t.Run("passwords "+v.name+", SASL "+v.mechanism, func(t *testing.T) {
			var outs []cmdOutput
			newSecEnv := func(t *testing.T, user, su string) *env {
				e := &env{t: t, db: db, dbn: dbn, kafka: k, dir: t.TempDir()}
				src, sasl := v.lines(t, user, su)
				e.writeRawConfig(db.Addr, src, sasl)
				return e
			}
			e := newSecEnv(t, mysqlUser, saslUser)

			// run, delivering an event, then stopped.
			p := e.start()
			e.deliverOne(fmt.Sprintf("secrets%d", vi), nil)
			code := p.stop(t)
			outs = append(outs, cmdOutput{"run", p.stdout.String(), p.stderr.String()})
			if code != 0 {
				t.Fatalf("run: exit status %d:\n%s", code, logTail(p.stderr.String()))
			}

			// run --dry-run, printing an event.
			p = e.start("--dry-run")
			id := "dry-" + secretHex(t, 6)
			e.tx(e.outboxInsert(id, "secretsdry", "k", "T", `{"n":1}`))
			waitForProc(t, "the dry run to print the event", func() bool { return strings.Contains(p.stdout.String(), id) }, p)
			p.stop(t)
			outs = append(outs, cmdOutput{"run --dry-run", p.stdout.String(), p.stderr.String()})

			for _, args := range [][]string{{"offsets", "show"}, {"offsets", "set", "--from", "latest"}, {"check"}} {
				stdout, stderr, code := e.runCmd(append(args, "-c", e.cfg)...)
				outs = append(outs, cmdOutput{strings.Join(args, " "), stdout, stderr})
				if args[0] == "offsets" && code != 0 {
					t.Errorf("%v: exit status %d:\n%s", args, code, stderr)
				}
			}

			// MariaDB refuses the login (no such user): run retries, logging
			// why, until stopped.
			bad := newSecEnv(t, "sec_nobody", saslUser)
			p = bad.startUnchecked()
			waitForProc(t, "the refused MariaDB login to be logged", func() bool { return strings.Contains(p.stderr.String(), "Access denied") }, p)
			p.stop(t)
			outs = append(outs, cmdOutput{"run refused by MariaDB", p.stdout.String(), p.stderr.String()})

			// Kafka refuses the SASL login (no such user): run retries,
			// logging why, until stopped.
			bad = newSecEnv(t, mysqlUser, "nobody")
			p = bad.startUnchecked()
			waitForProc(t, "the refused Kafka login to be logged", func() bool {
				return strings.Contains(p.stderr.String(), "kafka SASL authentication failed")
			}, p)
			p.stop(t)
			outs = append(outs, cmdOutput{"run refused by Kafka", p.stdout.String(), p.stderr.String()})

			// A configuration error: every problem listed, no password.
			cfg, err := os.ReadFile(e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			broken := strings.Replace(string(cfg), "outbox:\n", "outbox:\n  format: bogus\n  no_such_key: 1\n", 1)
			broken = strings.Replace(broken, "mechanism: "+v.mechanism, "mechanism: SCRAM-SHA-1", 1)
			if err := os.WriteFile(e.cfg, []byte(broken), 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := e.runCmd("run", "-c", e.cfg)
			outs = append(outs, cmdOutput{"configuration error", stdout, stderr})
			if code != 2 || !strings.Contains(stderr, "kafka.sasl.mechanism") || !strings.Contains(stderr, "outbox.format") {
				t.Errorf("configuration error: exit status %d, want 2 listing the problems:\n%s", code, stderr)
			}

			needles := append(secretNeedles(mysqlSecret), secretNeedles(saslSecret)...)
			for _, o := range outs {
				for stream, text := range map[string]string{"stdout": o.stdout, "stderr": o.stderr} {
					for _, n := range needles {
						if i := strings.Index(text, n); i >= 0 {
							t.Errorf("%s: %s shows a password (as %q) at byte %d:\n%s", o.what, stream, n, i, text[max(0, i-300):min(len(text), i+300)])
						}
					}
				}
				if o.stdout == "" && o.stderr == "" {
					t.Errorf("%s printed nothing: the check would prove nothing", o.what)
				}
			}
		})
	}
}

// waitForProc polls cond for up to 30 seconds, failing t when it never holds
// or when p exits first.
func waitForProc(t *testing.T, what string, cond func() bool, p *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case <-p.done:
			t.Fatalf("tailbox exited (%v) while waiting for %s:\n%s", p.err, what, logTail(p.stderr.String()))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s:\n%s", what, logTail(p.stderr.String()))
		}
	}
}

func secretHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
