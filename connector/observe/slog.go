package observe

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// slogHandler forwards go-mysql's slog records to zerolog. go-mysql logs
// routine progress (connect, rotate) at Info; those become Debug here so that
// tailbox's own lines stay the ones an operator reads.
type slogHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
	group string
}

// NewSlogLogger returns a slog.Logger writing to log with component=go-mysql.
func NewSlogLogger(log zerolog.Logger) *slog.Logger {
	return slog.New(&slogHandler{log: log.With().Str("component", "go-mysql").Logger()})
}

func (h *slogHandler) level(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	default:
		return zerolog.DebugLevel
	}
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= h.level(l)
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	ev := h.log.WithLevel(h.level(r.Level))
	add := func(a slog.Attr) bool {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		if key == "config" {
			// go-mysql logs its whole config struct; it holds the user name
			// and TLS settings only (the password is cleared), but it is noise.
			return true
		}
		if a.Value.Kind() == slog.KindDuration {
			// As every duration tailbox logs: milliseconds, named so.
			ev = ev.Dur(key+"_ms", a.Value.Duration())
			return true
		}
		ev = ev.Interface(key, a.Value.Any())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	ev.Msg(r.Message)
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &n
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	n := *h
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}
