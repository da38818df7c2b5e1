// Package logging builds vpcroute's logger so that its lines keep their level where
// operators read them. dockerd logs what a managed plugin writes to standard output
// at level info and what it writes to standard error at level error, so vpcroute
// writes debug and info lines to standard output and warnings and errors to standard
// error. Under systemd (JOURNAL_STREAM is set), each line also starts with the
// syslog priority ("<6>"), which journald turns into the entry's priority. JSON
// lines are for log shippers.
package logging

import (
	"context"
	"io"
	"log/slog"
)

// Formats of VPCROUTE_LOG_FORMAT.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Options say how to log.
type Options struct {
	Level  slog.Leveler
	Format string // FormatText (default) or FormatJSON
	// Stdout takes debug and info lines, Stderr warnings and errors.
	Stdout, Stderr io.Writer
	// Journald prefixes each line with its syslog priority.
	Journald bool
}

// New returns the logger.
func New(o Options) *slog.Logger {
	var h split
	for i, b := range buckets {
		w := o.Stdout
		if b.level >= slog.LevelWarn {
			w = o.Stderr
		}
		if o.Journald {
			w = prefixWriter{w: w, prefix: []byte(b.priority)}
		}
		ho := &slog.HandlerOptions{Level: o.Level}
		if o.Format == FormatJSON {
			h[i] = slog.NewJSONHandler(w, ho)
		} else {
			h[i] = slog.NewTextHandler(w, ho)
		}
	}
	return slog.New(h)
}

// buckets are the levels vpcroute logs at, with their syslog priorities.
var buckets = [...]struct {
	level    slog.Level
	priority string
}{
	{slog.LevelDebug, "<7>"},
	{slog.LevelInfo, "<6>"},
	{slog.LevelWarn, "<4>"},
	{slog.LevelError, "<3>"},
}

func bucket(l slog.Level) int {
	for i := len(buckets) - 1; i > 0; i-- {
		if l >= buckets[i].level {
			return i
		}
	}
	return 0
}

// split sends each record to the handler of its level's bucket.
type split [len(buckets)]slog.Handler

func (s split) Enabled(ctx context.Context, l slog.Level) bool {
	return s[bucket(l)].Enabled(ctx, l)
}

func (s split) Handle(ctx context.Context, r slog.Record) error {
	return s[bucket(r.Level)].Handle(ctx, r)
}

func (s split) WithAttrs(attrs []slog.Attr) slog.Handler {
	var out split
	for i, h := range s {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (s split) WithGroup(name string) slog.Handler {
	var out split
	for i, h := range s {
		out[i] = h.WithGroup(name)
	}
	return out
}

// prefixWriter starts every write with prefix: slog's handlers write one record per
// call.
type prefixWriter struct {
	w      io.Writer
	prefix []byte
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := p.w.Write(append(append([]byte{}, p.prefix...), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}
