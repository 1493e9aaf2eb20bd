package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written in YAML as Go duration syntax ("30s",
// "1h30m") with an extra `d` unit for days ("7d", "1d12h").
type Duration struct{ time.Duration }

// D wraps a time.Duration.
func D(d time.Duration) Duration { return Duration{d} }

var dayUnit = regexp.MustCompile(`([0-9]*\.?[0-9]+)d`)

// ParseDuration parses Go duration syntax plus the `d` (24h) unit.
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New("empty duration")
	}
	// Go has no unit containing 'd', so every "<number>d" is a day count and
	// can be rewritten in hours before handing the rest to the standard parser.
	var convErr error
	expanded := dayUnit.ReplaceAllStringFunc(in, func(m string) string {
		days, err := strconv.ParseFloat(strings.TrimSuffix(m, "d"), 64)
		if err != nil {
			convErr = err
			return m
		}
		return strconv.FormatFloat(days*24, 'f', -1, 64) + "h"
	})
	if convErr != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	d, err := time.ParseDuration(expanded)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 30s, 5m, 2h, 7d)", s)
	}
	return d, nil
}

// String prints the shortest form ParseDuration reads back: "7d", "30m",
// "1h30m", "200ms".
func (d Duration) String() string {
	v := d.Duration
	const day = 24 * time.Hour
	if v != 0 && v%day == 0 {
		return strconv.FormatInt(int64(v/day), 10) + "d"
	}
	s := v.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// UnmarshalYAML accepts a duration string; a bare number is refused because
// its unit would be a guess.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a duration like \"30s\" or \"7d\", got %s", describeNode(n))
	}
	if tag := n.ShortTag(); tag == "!!int" || tag == "!!float" {
		return fmt.Errorf("must be a duration with a unit like \"30s\" or \"7d\", got bare number %s", n.Value)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the form String returns.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText lets JSON and other text encoders use the same form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads the form MarshalText writes.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Secret is a string that never shows its value when printed or marshalled:
// every formatting verb and every encoder sees RedactedText instead. Use Value to
// read the secret where it is really needed.
type Secret string

// RedactedText is what a set Secret prints as.
const RedactedText = "[redacted]"

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// String returns RedactedText when the secret is set and "" when it is not, so
// output still tells whether one is configured.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return RedactedText
}

// GoString covers %#v, which does not use String.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalYAML redacts.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON redacts.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText redacts (used by encoders that prefer text, e.g. map keys, zap).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

var sizePattern = regexp.MustCompile(`^(?i)([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b)?$`)

// ParseBytes reads a size: a byte count ("1048576") or a number with a
// binary unit k, m, g or t, optionally followed by b or ib ("512m", "2g",
// "1.5GiB"). Units are powers of 1024, as Docker's are.
func ParseBytes(s string) (int64, error) {
	m := sizePattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q (use e.g. 512m, 2g or a byte count)", s)
	}
	num, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[strings.ToLower(m[2])]
	v := num * float64(int64(1)<<shift)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", s)
	}
	return int64(v), nil
}

// FormatBytes writes a size in the largest unit that divides it exactly.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"t", 40}, {"g", 30}, {"m", 20}, {"k", 10}} {
		size := int64(1) << u.shift
		if n != 0 && n%size == 0 {
			return strconv.FormatInt(n/size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// formatCPUs writes nano-CPUs as a CPU count.
func formatCPUs(nano int64) float64 { return float64(nano) / float64(nanoPerCPU) }

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing (null)"
		}
		return strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	default:
		return "a document"
	}
}
