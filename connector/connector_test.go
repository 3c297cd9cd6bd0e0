package connector

import (
	"errors"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

// parseConfig is a valid configuration with extra appended to its YAML.
func parseConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`name: map-test
source: {addr: "127.0.0.1:3306", user: cdc}
outbox: {tables: [s.outbox]}
`+extra), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestProducerConfigMapsAcksAndDelivery(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantAcks kafka.Acks
		wantTxn  bool
	}{
		{"the default acks is all, without transactions", "kafka: {brokers: [\"k:9092\"]}\n", kafka.AcksAll, false},
		{"acks 1 waits for the leader", "kafka: {brokers: [\"k:9092\"], acks: \"1\"}\n", kafka.AcksLeader, false},
		{"acks 0 waits for nothing", "kafka: {brokers: [\"k:9092\"], acks: 0}\n", kafka.AcksNone, false},
		{"exactly_once produces transactionally with acks all",
			"kafka: {brokers: [\"k:9092\"], acks: all}\ncheckpoint: {store: kafka}\ndelivery: exactly_once\n", kafka.AcksAll, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(parseConfig(t, tt.yaml), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			pc, err := c.producerConfig()
			if err != nil {
				t.Fatal(err)
			}
			if pc.Acks != tt.wantAcks {
				t.Errorf("Acks = %v, want %v", pc.Acks, tt.wantAcks)
			}
			if got := pc.TransactionalID != ""; got != tt.wantTxn {
				t.Errorf("TransactionalID = %q, want one: %v", pc.TransactionalID, tt.wantTxn)
			}
			if err := pc.Validate(); err != nil {
				t.Errorf("kafka.Config.Validate: %v", err)
			}
		})
	}
}

func TestNewRejectsAcksItCannotMap(t *testing.T) {
	cfg := parseConfig(t, "kafka: {brokers: [\"k:9092\"]}\n")
	cfg.Kafka.Acks = "2" // past Validate, as a Config built in code may be
	_, err := New(cfg, zerolog.Nop())
	if !errors.Is(err, ErrConfig) || !errors.Is(err, kafka.ErrInvalidConfig) {
		t.Fatalf("New = %v, want ErrConfig wrapping kafka.ErrInvalidConfig", err)
	}
	const want = `invalid configuration: kafka.acks: acks: must be one of all, leader, none (got "2")`
	if err.Error() != want {
		t.Errorf("New = %q, want %q", err, want)
	}
}

// readerConfig converts source.tls.mode to binlog.TLSMode: every mode
// config accepts must be the binlog mode of the same meaning.
func TestReaderConfigMapsEveryTLSMode(t *testing.T) {
	pairs := []struct {
		cfg  config.TLSMode
		want binlog.TLSMode
	}{
		{config.TLSDisabled, binlog.TLSDisabled},
		{config.TLSPreferred, binlog.TLSPreferred},
		{config.TLSRequired, binlog.TLSRequired},
		{config.TLSVerifyCA, binlog.TLSVerifyCA},
		{config.TLSVerifyIdentity, binlog.TLSVerifyIdentity},
	}
	for _, p := range pairs {
		t.Run(string(p.cfg), func(t *testing.T) {
			tc := config.SourceTLS{Mode: p.cfg, CAFile: "ca.pem", CertFile: "client.pem", KeyFile: "client-key.pem"}
			c := &Connector{cfg: &config.Config{Source: config.Source{Addr: "db.internal:3306", TLS: tc}}}
			want := binlog.TLS{Mode: p.want, CAFile: "ca.pem", CertFile: "client.pem", KeyFile: "client-key.pem"}
			if got := c.readerConfig().TLS; got != want {
				t.Fatalf("readerConfig().TLS = %+v, want %+v", got, want)
			}
		})
	}
}
