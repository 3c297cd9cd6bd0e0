// Package preflight owns the checks behind `tailbox check` and the source
// checks Run makes before it streams: reachability, the server's binlog
// settings, the account's grants, the outbox tables and their mapped
// columns, server_id, the start position and Kafka. Each check is a Result
// with the exact fix. It connects through the functions its Checker is
// given, writes nothing and logs nothing: the caller prints or logs the
// results.
package preflight

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
	// RunTolerates marks the one kind of failure on which `run` starts
	// anyway, logging it as a warning: what the server shows at run time
	// may be this connector's own doing (a connection of a former run,
	// or of the ha replica it takes over from, that the server has not
	// dropped yet). Run refuses to start on every other failure of
	// SourceChecks, with the text of `tailbox check`.
	RunTolerates bool
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

// Checker runs the checks of one configured connector. The connector fills
// every field; the checks read them and change nothing.
type Checker struct {
	// Addr is source.addr, named in details.
	Addr string
	// User is source.user, named in GRANT and CREATE USER fixes.
	User string
	// Flavor is source.flavor; FlavorUnknown (auto) accepts whichever the
	// server is, another flavor is a warning when the server's version
	// says otherwise.
	Flavor binlog.Flavor
	// ServerID is source.server_id, compared with the server's and its
	// replicas' ids.
	ServerID uint32
	// AllowMinimalMetadata is source.allow_minimal_metadata: without FULL
	// row metadata the checks warn instead of failing.
	AllowMinimalMetadata bool
	// Tables are outbox.tables, "schema.table".
	Tables []string
	// Columns are the columns every outbox table must have, in the order
	// fixes list them.
	Columns []Column
	// Store names the checkpoint store in details.
	Store string
	// DeleteBy is, with outbox.cleanup, outbox.fields.id: the account
	// must be allowed to DELETE from each outbox table by it. "" when
	// cleanup is off: nothing is checked.
	DeleteBy string

	// Dial connects to the source once, without retrying, as Run's reader
	// does, to inspect it (binlog.Inspect); an error matching
	// binlog.ErrTLS is a TLS misconfiguration.
	Dial func(ctx context.Context) (*binlog.Inspector, error)
	// ReadCheckpoint loads the stored checkpoint without locking or
	// creating anything; checkpoint.ErrNotFound when there is none.
	ReadCheckpoint func(ctx context.Context) (*checkpoint.Checkpoint, error)
	// StartPoint applies Run's start rules without --from to cp (nil: no
	// checkpoint): the point Run would start from and what it came from
	// ("checkpoint", "start.from ...").
	StartPoint func(ctx context.Context, insp *binlog.Inspector, cp *checkpoint.Checkpoint) (binlog.Point, string, error)
	// ProducerConfig maps kafka.* onto the producer's configuration; its
	// error is a kafka.tls problem.
	ProducerConfig func() (kafka.Config, error)
}

// Check runs every check and returns the checklist of `tailbox check`, in
// a fixed order: the source server (reachable, version), its binlog
// settings, the account's grants, the outbox tables and their mapped
// columns, server_id, the start position (the stored checkpoint, else
// start.from) and Kafka. It connects to the source once, without retrying,
// and to Kafka within a bounded time; it writes nothing: no checkpoint, no
// record. Every problem is a Result; when the source cannot be reached the
// items that need it are left out. Run refuses to start on the failures of
// SourceChecks that are not RunTolerates, with the same text.
func (k *Checker) Check(ctx context.Context) []Result {
	var rs []Result
	rs = append(rs, k.checkSource(ctx)...)
	return append(rs, k.checkKafka(ctx))
}

// checkSource connects to the source once and runs every check that needs it.
func (k *Checker) checkSource(ctx context.Context) []Result {
	addr := k.Addr
	insp, err := k.Dial(ctx)
	if errors.Is(err, binlog.ErrTLS) {
		return []Result{{Name: "source", Status: StatusFail, Detail: err.Error(),
			Fix: "correct source.tls (mode, ca_file, cert_file, key_file)"}}
	}
	if err != nil {
		r := Result{Name: "source", Status: StatusFail, Detail: fmt.Sprintf("cannot connect to %s: %s", addr, err)}
		switch {
		case binlog.IsAccessDenied(err), errors.Is(err, binlog.ErrAuthentication):
			r.Fix = fmt.Sprintf("check source.user and source.password (or source.password_file); the server needs an account for user %s from this host, e.g. CREATE USER %s IDENTIFIED BY '...';",
				sqlString(k.User), account(k.User, "%"))
		case errors.Is(err, binlog.ErrConnection):
			r.Fix = "check source.addr (host:port) and that the server accepts TCP connections from this host (bind_address, port, firewall), and source.tls.mode"
		default:
			r.Fix = "check source.addr, source.user and source.flavor"
		}
		return []Result{r}
	}
	defer insp.Close()
	srv := insp.Server()

	src := Result{Name: "source", Status: StatusOK, Detail: fmt.Sprintf("%s answers: %s %s", addr, flavorName(srv.Flavor), srv.Version)}
	acct := account(k.User, "%")
	if user, host, _, err := insp.Account(ctx); err == nil {
		src.Detail += ", connected as " + account(user, host)
		acct = account(k.User, host)
	}
	if detected := versionFlavor(srv.Version); k.Flavor != binlog.FlavorUnknown && detected != srv.Flavor {
		src.Status = StatusWarn
		src.Detail += fmt.Sprintf("; source.flavor is %s, but the version says %s", k.Flavor, flavorName(detected))
		src.Fix = "set source.flavor: auto"
	}
	rs := []Result{src}
	rs = append(rs, k.SourceChecks(ctx, insp)...)
	rs = append(rs, k.checkStart(ctx, insp, acct))
	return rs
}

// checkStart checks the position run would start from without --from: the
// stored checkpoint, else start.from. It uses the very start rules of Run.
func (k *Checker) checkStart(ctx context.Context, insp *binlog.Inspector, acct string) Result {
	r := Result{Name: "start position", Status: StatusOK}
	path := k.Store
	cp, err := k.ReadCheckpoint(ctx)
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		cp = nil
	case err != nil:
		r.Status = StatusFail
		r.Detail = fmt.Sprintf("the checkpoint %s cannot be used: %s", path, err)
		r.Fix = "replace it with `tailbox offsets set -c FILE --from SPEC` (run leaves the file as it is)"
		return r
	}
	p, source, err := k.StartPoint(ctx, insp, cp)
	if err != nil {
		r.Status = StatusFail
		r.Detail = err.Error()
		switch {
		case binlog.IsAccessDenied(err):
			r.Fix = "GRANT " + replicationClientName(insp.Server()) + " ON *.* TO " + acct + ";"
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
func (k *Checker) checkKafka(ctx context.Context) Result {
	r := Result{Name: "kafka", Status: StatusOK}
	pc, err := k.ProducerConfig()
	if err != nil {
		r.Status, r.Detail, r.Fix = StatusFail, err.Error(), "correct kafka.tls"
		return r
	}
	brokers := strings.Join(pc.Brokers, ",")
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
