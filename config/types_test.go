package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestSecretIsRedacted(t *testing.T) {
	const password = "s3cret-Pa55"
	s := Secret(password)
	if s.Reveal() != password {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
	if s.String() != "[redacted]" {
		t.Errorf("String() = %q", s.String())
	}
	var empty Secret
	if empty.String() != "" || fmt.Sprint(empty) != "" {
		t.Errorf("an empty secret prints %q, want \"\"", empty.String())
	}

	cfg := validConfig(t)
	cfg.Source.Password = Secret(password)
	cfg.Kafka.SASL = SASL{Mechanism: "PLAIN", User: "svc", Password: Secret(password)}

	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "password", cfg.Source.Password)

	outputs := []struct {
		name string
		out  string
	}{
		{"%v", fmt.Sprintf("%v", cfg)},
		{"%+v", fmt.Sprintf("%+v", cfg)},
		{"%#v", fmt.Sprintf("%#v", cfg)},
		{"%+v of a pointer's target", fmt.Sprintf("%+v", *cfg)},
		{"%s", fmt.Sprintf("%s", s)},
		{"%q", fmt.Sprintf("%q", s)},
		{"%x", fmt.Sprintf("%x", s)},
		{"%X", fmt.Sprintf("%X", s)},
		{"%d", fmt.Sprintf("%d", s)},
		{"%10.3s", fmt.Sprintf("%10.3s", s)},
		{"%#v of the secret", fmt.Sprintf("%#v", s)},
		{"yaml.Marshal", string(y)},
		{"json.Marshal", string(j)},
		{"slog", logged.String()},
	}
	hexPassword := fmt.Sprintf("%x", password)
	for _, o := range outputs {
		if strings.Contains(o.out, password) || strings.Contains(strings.ToLower(o.out), hexPassword) {
			t.Errorf("%s shows the password: %s", o.name, o.out)
		}
	}
	if !strings.Contains(string(y), "password: '[redacted]'") {
		t.Errorf("yaml.Marshal does not show that the password is set:\n%s", y)
	}
	if !strings.Contains(fmt.Sprintf("%+v", cfg), "Password:[redacted]") {
		t.Errorf("%%+v does not show that the password is set: %+v", cfg)
	}
	if got := fmt.Sprintf("%#v", s); got != `"[redacted]"` {
		t.Errorf("%%#v = %s", got)
	}
}

func TestDuration(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: 1m30s\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.D.D() != 90*time.Second || v.D.String() != "1m30s" {
		t.Errorf("got %v (%s), want 1m30s", v.D.D(), v.D)
	}
	out, err := yaml.Marshal(v)
	if err != nil || string(out) != "d: 1m30s\n" {
		t.Errorf("yaml.Marshal = %q, %v", out, err)
	}
	j, err := json.Marshal(v)
	if err != nil || string(j) != `{"D":"1m30s"}` {
		t.Errorf("json.Marshal = %s, %v", j, err)
	}
	for _, bad := range []string{"d: 10 seconds\n", "d: 10\n", "d: [1s]\n"} {
		err := yaml.Unmarshal([]byte(bad), &v)
		if err == nil || !strings.Contains(err.Error(), "invalid duration (got ") {
			t.Errorf("yaml.Unmarshal(%q) error %v, want invalid duration", bad, err)
		}
	}
}
