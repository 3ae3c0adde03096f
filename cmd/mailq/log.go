package main

import (
	"io"
	"time"

	"github.com/rs/zerolog"
)

// newLogger returns the daemon's logger: one JSON object per line by
// default (journald-friendly), or zerolog's console format for humans.
// level and format were validated by config.
func newLogger(w io.Writer, level, format string) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || lvl == zerolog.NoLevel {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}
