package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// httpShutdownTimeout bounds waiting for requests in progress when the
// Observer closes.
const httpShutdownTimeout = 5 * time.Second

// httpServer is a Run's observability endpoint: /metrics, /healthz, /readyz.
type httpServer struct {
	srv  *http.Server
	addr string // the address it listens on (the real port when http.listen has port 0)
	done chan struct{}
}

// serveHTTP listens on addr and serves m's endpoint in the background,
// logging to log. It returns an error when it cannot listen (the port is
// taken, the address is not local), naming http.listen.
func serveHTTP(addr string, m *Metrics, log zerolog.Logger) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w (is another process using the port? set http.listen to a free host:port, or \"\" to turn the endpoint off)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, reason := m.health(time.Now()).ready()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + reason + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready: " + reason + "\n"))
	})
	s := &httpServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(NewSlogLogger(log).Handler(), slog.LevelWarn),
		},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	log = log.With().Str("component", "http").Logger()
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", s.addr).Msg("http endpoint stopped")
		}
	}()
	log.Info().Str("addr", s.addr).Msg("http listening")
	return s, nil
}

// close shuts the server down, waiting up to httpShutdownTimeout for
// requests in progress.
func (s *httpServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
}

// health is what the readiness rule decides on: a snapshot of Run's state.
type health struct {
	phase      phase
	stopping   bool
	dryRun     bool
	producer   bool // the session's producer is connected
	hasReader  bool
	source     binlog.Stats
	stalled    time.Duration // how long the binlog stream has not moved
	stallAfter time.Duration
	inFlight   int
}

// ready is the readiness rule: ready while a session streams — connected to
// the source (and to Kafka, unless in a dry run) — and the binlog stream
// has moved (an event or a heartbeat) within stallAfter. The reason says
// why not, or what is running.
func (h health) ready() (bool, string) {
	switch {
	case h.stopping:
		return false, "stopping"
	case h.phase == phaseIdle:
		return false, "not running"
	case h.phase == phaseStandby:
		return false, "standby: another replica holds the ha lease"
	case h.phase == phaseStarting:
		return false, "starting: connecting to the source and resolving the start position"
	case h.phase == phaseRestarting:
		return false, "restarting the pipeline after a producer failure"
	case !h.producer && !h.dryRun:
		return false, "connecting to Kafka"
	case !h.hasReader || !h.source.Connected:
		if h.source.Reconnects > 0 {
			return false, "source connection lost, reconnecting (" + strconv.FormatUint(h.source.Reconnects, 10) + " attempts so far)"
		}
		return false, "connecting to the source's binlog stream"
	case h.stalled > h.stallAfter:
		why := "no binlog event or heartbeat for " + h.stalled.Round(time.Second).String()
		if h.inFlight > 0 {
			why += "; " + strconv.Itoa(h.inFlight) + " records wait for Kafka acknowledgements"
		}
		return false, why
	}
	return true, "streaming"
}
