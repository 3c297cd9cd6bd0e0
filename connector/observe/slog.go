package observe

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// slogHandler forwards go-mysql's slog records to zerolog, all at Debug:
// go-mysql logs routine progress (connect, rotate) at Info, and at Warn and
// Error the very stream errors it then returns to the binlog reader (its
// own retries are off), which classifies them and says what to do — at
// Error they would be the same occurrence logged twice, once raw. Error
// values are written as their text, not as structs.
type slogHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
	group string
}

// NewSlogLogger returns a slog.Logger writing to log with component=go-mysql.
func NewSlogLogger(log zerolog.Logger) *slog.Logger {
	return slog.New(&slogHandler{log: log.With().Str("component", "go-mysql").Logger()})
}

func (h *slogHandler) level(slog.Level) zerolog.Level { return zerolog.DebugLevel }

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
		if err, ok := a.Value.Any().(error); ok {
			ev = ev.Str(key, err.Error())
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
