package config

import (
	"fmt"
	"time"
)

// UnmarshalText reads a Go duration string such as "5m" or "1h30m".
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\", \"5m\" or \"120h\": %w", err)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration the way UnmarshalText reads it.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}

// D is a shorthand for building a Duration.
func D(v time.Duration) Duration { return Duration{v} }
