package kafka

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func validConfig() Config {
	return Config{Brokers: []string{"127.0.0.1:9092"}}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // every line of the joined error, in order; "" = valid
	}{
		{"the zero value with one broker is valid", func(*Config) {}, ""},
		{"every setting may be set", func(c *Config) {
			c.ClientID, c.Acks, c.Compression, c.MaxMessageBytes = "x", AcksLeader, "zstd", 5<<20
			c.Linger, c.DialTimeout = 5*time.Millisecond, time.Second
			c.SASL = SASL{Mechanism: SASLScramSHA512, User: "u", Password: "p"}
		}, ""},
		{"brokers are required", func(c *Config) { c.Brokers = nil },
			"brokers: at least one broker is required"},
		{"a broker needs a host and a port", func(c *Config) { c.Brokers = []string{"kafka", ":9092", "kafka:0", "kafka:x"} },
			`brokers[0]: must be host:port (got "kafka")` + "\n" +
				`brokers[1]: must be host:port (got ":9092")` + "\n" +
				`brokers[2]: port must be 1-65535 (got "kafka:0")` + "\n" +
				`brokers[3]: port must be 1-65535 (got "kafka:x")`},
		{"acks must be known", func(c *Config) { c.Acks = 7 },
			"acks: must be one of all, leader, none (got Acks(7))"},
		{"compression must be known", func(c *Config) { c.Compression = "brotli" },
			`compression: must be one of none, gzip, snappy, lz4, zstd (got "brotli")`},
		{"max_message_bytes must fit a request", func(c *Config) { c.MaxMessageBytes = -1 },
			"max_message_bytes: must be between 0 (default) and 104857599 (got -1)"},
		{"durations must not be negative", func(c *Config) { c.Linger, c.DialTimeout = -time.Second, -time.Millisecond },
			"linger: must not be negative (got -1s)\ndial_timeout: must not be negative (got -1ms)"},
		{"a SASL mechanism needs user and password", func(c *Config) { c.SASL.Mechanism = SASLPlain },
			`sasl.user: is required with sasl.mechanism PLAIN (got "")` + "\n" +
				`sasl.password: is required with sasl.mechanism PLAIN (got "")`},
		{"credentials need a mechanism", func(c *Config) { c.SASL.User = "u" },
			`sasl.mechanism: is required when a user or password is set (got "")`},
		{"the SASL mechanism must be supported", func(c *Config) { c.SASL = SASL{Mechanism: "GSSAPI", User: "u", Password: "p"} },
			`sasl.mechanism: must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or empty (got "GSSAPI")`},
		{"every problem is reported at once", func(c *Config) { c.Brokers, c.Compression = nil, "x" },
			"brokers: at least one broker is required\ncompression: must be one of none, gzip, snappy, lz4, zstd (got \"x\")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.mutate(&cfg)
			before := fmt.Sprintf("%#v", cfg)
			err := cfg.Validate()
			if fmt.Sprintf("%#v", cfg) != before {
				t.Error("Validate modified the config")
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := cfg.withDefaults().saramaConfig(); err != nil {
					t.Fatalf("sarama rejects a valid config: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Validate() =\n%s\nwant\n%s", err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Error("the error does not wrap ErrInvalidConfig")
			}
		})
	}
}

func TestSaramaConfigIsSafe(t *testing.T) {
	sc, err := validConfig().withDefaults().saramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"acks=all", sc.Producer.RequiredAcks == sarama.WaitForAll},
		{"idempotent", sc.Producer.Idempotent},
		{"one in-flight request", sc.Net.MaxOpenRequests == 1},
		{"successes returned", sc.Producer.Return.Successes},
		{"errors returned", sc.Producer.Return.Errors},
		{"many retries", sc.Producer.Retry.Max == retryMax},
		{"version with idempotence and headers", sc.Version.IsAtLeast(sarama.V0_11_0_0)},
		{"client id default", sc.ClientID == DefaultClientID},
		{"max message bytes default", sc.Producer.MaxMessageBytes == DefaultMaxMessageBytes},
		{"dial timeout default", sc.Net.DialTimeout == DefaultDialTimeout},
		{"no full metadata", !sc.Metadata.Full},
		{"no flush thresholds without linger", sc.Producer.Flush.Bytes == 0 && sc.Producer.Flush.Messages == 0 && sc.Producer.Flush.Frequency == 0},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("sarama config is not %s", c.name)
		}
	}
	if _, ok := sc.Producer.Partitioner("t").(murmur2Partitioner); !ok {
		t.Error("partitioner is not murmur2")
	}
}

func TestRetryBackoffIsCappedExponential(t *testing.T) {
	want := []time.Duration{100, 100, 200, 400, 800, 1600, 2000, 2000}
	for i, w := range want {
		if got := retryBackoff(i, retryMax); got != w*time.Millisecond {
			t.Errorf("retryBackoff(%d) = %s, want %s", i, got, w*time.Millisecond)
		}
	}
	if got := retryBackoff(retryMax, retryMax); got != retryBackoffMax {
		t.Errorf("retryBackoff(%d) = %s, want %s", retryMax, got, retryBackoffMax)
	}
}

func TestParseAcks(t *testing.T) {
	for in, want := range map[string]Acks{"all": AcksAll, "-1": AcksAll, "ALL": AcksAll, "leader": AcksLeader, "1": AcksLeader, "none": AcksNone, "0": AcksNone} {
		got, err := ParseAcks(in)
		if err != nil || got != want {
			t.Errorf("ParseAcks(%q) = %v, %v; want %v", in, got, err, want)
		}
		if again, _ := ParseAcks(got.String()); again != got {
			t.Errorf("ParseAcks(%v.String()) = %v", got, again)
		}
	}
	_, err := ParseAcks("2")
	if !errors.Is(err, ErrInvalidConfig) || err.Error() != `acks: must be one of all, leader, none (got "2")` {
		t.Errorf("ParseAcks(2) = %v", err)
	}
}

func TestSASLRedactsThePassword(t *testing.T) {
	s := SASL{Mechanism: SASLPlain, User: "cdc", Password: "hunter2"}
	js, err := json.Marshal(Config{SASL: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{s.String(), fmt.Sprintf("%v %+v %#v", s, s, s), fmt.Sprintf("%+v", Config{SASL: s}), string(js)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("password leaked: %s", out)
		}
		if !strings.Contains(out, "cdc") || !strings.Contains(out, redacted) {
			t.Errorf("want user and %s in %s", redacted, out)
		}
	}
}
