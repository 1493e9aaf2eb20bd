package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"30s":     30 * time.Second,
		"200ms":   200 * time.Millisecond,
		"1h30m":   90 * time.Minute,
		"7d":      7 * 24 * time.Hour,
		"1d12h":   36 * time.Hour,
		"1.5d":    36 * time.Hour,
		"-1d":     -24 * time.Hour,
		" 5m ":    5 * time.Minute,
		"2d3h4m":  51*time.Hour + 4*time.Minute,
		"0.5d30m": 12*time.Hour + 30*time.Minute,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "7", "d", "1w", "5 m", "1dd"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestDurationString_ReadsBack(t *testing.T) {
	cases := map[time.Duration]string{
		30 * time.Second:        "30s",
		30 * time.Minute:        "30m",
		4 * time.Hour:           "4h",
		90 * time.Minute:        "1h30m",
		7 * 24 * time.Hour:      "7d",
		200 * time.Millisecond:  "200ms",
		25 * time.Hour:          "25h",
		61 * time.Second:        "1m1s",
		0:                       "0s",
		-48 * time.Hour:         "-2d",
		time.Hour + time.Second: "1h0m1s",
	}
	for d, want := range cases {
		s := D(d).String()
		if s != want {
			t.Errorf("D(%v).String() = %q, want %q", d, s, want)
		}
		back, err := ParseDuration(s)
		if err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, back, err, d)
		}
	}
}

func TestDuration_YAMLAndJSON(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: 2d"), &v); err != nil || v.D.Duration != 48*time.Hour {
		t.Fatalf("yaml 2d = %v, %v", v.D, err)
	}
	if err := yaml.Unmarshal([]byte("d: 30"), &v); err == nil {
		t.Fatal("a bare number was accepted as a duration")
	}
	b, err := json.Marshal(struct{ D Duration }{D(time.Hour)})
	if err != nil || string(b) != `{"D":"1h"}` {
		t.Fatalf("json = %s, %v", b, err)
	}
}

func TestParseBytes(t *testing.T) {
	good := map[string]int64{
		"1048576": 1 << 20,
		"512m":    512 << 20,
		"2g":      2 << 30,
		"2G":      2 << 30,
		"2gb":     2 << 30,
		"1.5GiB":  3 << 29,
		"64k":     64 << 10,
		"1t":      1 << 40,
		"10 m":    10 << 20,
	}
	for in, want := range good {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-5m", "2x", "1.5", "m", "99999999999t"} {
		if got, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", in, got)
		}
	}
	for n, want := range map[int64]string{2 << 30: "2g", 512 << 20: "512m", 1536 << 20: "1536m", 1000: "1000", 0: "0", 3 << 40: "3t"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// A set secret must not leak through any formatting verb or encoder.
func TestSecret_NeverShowsValue(t *testing.T) {
	const value = "supersecret"
	s := Secret(value)
	type holder struct {
		Token Secret `yaml:"token" json:"token"`
	}
	outputs := map[string]string{
		"%v":     fmt.Sprintf("%v", s),
		"%s":     fmt.Sprintf("%s", s),
		"%q":     fmt.Sprintf("%q", s),
		"%x":     fmt.Sprintf("%x", s),
		"%#v":    fmt.Sprintf("%#v", s),
		"%+v":    fmt.Sprintf("%+v", holder{s}),
		"Sprint": fmt.Sprint(s),
	}
	j, err := json.Marshal(holder{s})
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(j)
	y, err := yaml.Marshal(holder{s})
	if err != nil {
		t.Fatal(err)
	}
	outputs["yaml"] = string(y)
	for how, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("%s shows the secret: %s", how, out)
		}
	}
	if !strings.Contains(outputs["json"], RedactedText) || !strings.Contains(outputs["yaml"], RedactedText) {
		t.Errorf("encoders do not say the secret is set: %s / %s", outputs["json"], outputs["yaml"])
	}
	if s.Value() != value {
		t.Errorf("Value() = %q", s.Value())
	}
	if Secret("").String() != "" {
		t.Error("an unset secret should print as empty")
	}
}
