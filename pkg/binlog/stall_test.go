package binlog_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// stallProxy forwards TCP connections to a server until stall is called:
// from then on it forwards nothing and closes nothing, as a half-open
// connection or a dead NAT entry does.
type stallProxy struct {
	ln      net.Listener
	target  string
	stalled atomic.Bool
}

func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	px := &stallProxy{ln: ln, target: target}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				a.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, a, b)
			mu.Unlock()
			go px.copy(b, a)
			go px.copy(a, b)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return px
}

// copy forwards src to dst until src ends or the proxy stalls; a stalled
// proxy holds both connections open.
func (px *stallProxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if px.stalled.Load() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A query on the Inspector's metadata connection ends with the context of
// its call when the server stops answering (a stalled connection): go-mysql
// takes no context, and without the binding a stop would wait on it for
// good.
func TestInspectorQueryEndsWithItsContextOnAStalledConnection(t *testing.T) {
	db := testenv.MySQL(t)
	px := startStallProxy(t, db.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in, err := binlog.Inspect(ctx, binlog.Config{Addr: px.ln.Addr().String(), User: db.User, Password: db.Password}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	defer in.Close()
	if _, err := in.Latest(ctx); err != nil {
		t.Fatalf("Latest before the stall: %v", err)
	}

	px.stalled.Store(true)
	qctx, qcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer qcancel()
	done := make(chan error, 1)
	go func() {
		_, err := in.BinaryLogs(qctx)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("BinaryLogs on a stalled connection returned no error")
		}
		if !errors.Is(qctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("BinaryLogs returned %v before its context ended", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("BinaryLogs on a stalled connection still waits 5s after its context ended")
	}
}
