package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"gopkg.in/yaml.v3"
)

// redacted is what a non-empty Secret prints as.
const redacted = "[redacted]"

// Reveal returns the secret's value. It is the only way to read it; call it
// where the credential is handed to a client, nowhere else.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]" for a non-empty secret and "" for an empty one,
// so that logs and errors show whether a password is set but never its value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString is String: %#v of a Secret, or of a struct holding one, is redacted too.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// Format redacts the secret under every fmt verb (%v, %+v, %#v, %s, %q, %x,
// %d, ...), so no verb prints the value by accident.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	if verb != 's' && verb != 'q' && verb != 'v' && verb != 'x' && verb != 'X' {
		verb = 'v'
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// LogValue redacts the secret in log/slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML writes the redacted form: a marshalled Config never holds a password.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON writes the redacted form as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d as a Go duration string, such as "10s" or "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a Go duration string ("10s", "1m30s", "500ms"). A bare
// number has no unit and is an error; null leaves d unchanged.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("invalid duration (got %s)", describe(n))
	}
	if n.ShortTag() == "!!null" {
		return nil
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText writes d as a Go duration string (JSON, flag.TextVar).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration string (JSON, flag.TextVar).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// parseDuration parses a Go duration string; its error is the problem reason
// and value, as Parse reports it.
func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration (got %q)", s)
	}
	return Duration(v), nil
}
