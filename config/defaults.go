package config

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
	"time"
)

// Default returns every default of tailbox's configuration, in one place; each
// field's doc names the default it gets here. Name and Outbox.Tables, Source.Addr,
// Source.User and Kafka.Brokers have no default. Defaults derived from other
// fields (Source.ServerID, Kafka.ClientID and Checkpoint.File from Name,
// Additional's Placement and As) are filled by FillDerived once those fields
// are known.
//
// Parse decodes a file over Default(), so a key that is absent, or present
// with no value (null), keeps its default, while an explicit value — also ""
// or 0 — replaces it.
func Default() Config {
	return Config{
		Source: Source{
			Flavor:    "auto",
			TLS:       SourceTLS{Mode: TLSPreferred},
			Heartbeat: Duration(10 * time.Second),
		},
		Start: Start{From: "latest"},
		Outbox: Outbox{
			Fields: Fields{
				ID:        "id",
				Key:       "aggregateid",
				Type:      "type",
				Payload:   "payload",
				RouteBy:   "aggregatetype",
				Timestamp: "",
			},
			Route:         Route{Topic: "outbox.event.${routedByValue}"},
			Format:        "envelope",
			PayloadType:   "auto",
			TimestampZone: "UTC",
			OnUpdate:      "warn",
			OnError:       OnErrorFail,
			Cleanup:       Cleanup{BatchSize: 500, Rate: 5000, MaxPending: 1000000},
		},
		Kafka: Kafka{
			Acks:            AcksAll,
			Compression:     "lz4",
			MaxMessageBytes: 1000000,
			Linger:          Duration(5 * time.Millisecond),

			TransactionInterval: Duration(100 * time.Millisecond),
		},
		Checkpoint: Checkpoint{
			Store:    StoreFile,
			Interval: Duration(time.Second),
			Topic:    "tailbox.checkpoints",
		},
		Delivery: AtLeastOnce,
		HA:       HA{SessionTimeout: Duration(10 * time.Second), LeaseTopic: "tailbox.lease"},
		HTTP:     HTTP{Listen: "127.0.0.1:7391"},
		Log:      Log{Level: "info", Format: "json", StatusInterval: Duration(30 * time.Second)},
	}
}

// Default placement of an additional column.
const defaultPlacement = "header"

// FillDerived fills the defaults that depend on other fields, where they are
// still empty: Source.ServerID (DefaultServerID(Name)), Kafka.ClientID
// ("tailbox-" + Name) and Checkpoint.File ("./data/" + Name +
// ".checkpoint.json") once Name is set, and each
// additional column's Placement (header) and As (its Column). Parse calls it;
// a Config built in code calls it after setting Name and before Validate.
// It is idempotent and never overwrites a value that is set.
func (c *Config) FillDerived() {
	if c.Name != "" {
		if c.Source.ServerID == 0 {
			c.Source.ServerID = DefaultServerID(c.Name)
		}
		if c.Kafka.ClientID == "" {
			c.Kafka.ClientID = "tailbox-" + c.Name
		}
		if c.Checkpoint.File == "" {
			c.Checkpoint.File = "./data/" + c.Name + ".checkpoint.json"
		}
	}
	for i := range c.Outbox.Additional {
		a := &c.Outbox.Additional[i]
		if a.Placement == "" {
			a.Placement = defaultPlacement
		}
		if a.As == "" {
			a.As = a.Column
		}
	}
}

// Range of the server_ids DefaultServerID derives: 10^9 ids from
// 1,000,000,000 to 1,999,999,999. Below it are the ids people pick by hand
// (1, 2, 100, 1001...) and other CDC tools' defaults (Debezium picks from
// 5400-6400, Maxwell 6379); above it are the ids derived from private IPv4
// addresses (10.0.0.0/8 is 167,772,160 and up, 172.16.0.0/12 2,886,729,728
// and up, 192.168.0.0/16 3,232,235,520 and up), a common scheme for real
// replicas. It stays below 2^31 for tools that read server_id as a signed
// 32-bit integer. Two names get the same id with a chance of one in 10^9.
const (
	derivedServerIDBase  = 1_000_000_000
	derivedServerIDCount = 1_000_000_000
)

// DefaultServerID is the default source.server_id of the connector called
// name: the first 8 bytes of the SHA-256 of name, big-endian, modulo 10^9,
// plus 10^9 — so from 1,000,000,000 to 1,999,999,999, the same for a name
// on every run, machine and version, and different for different names
// but for a one-in-10^9 chance. Replicas of one connector (ha.enabled)
// share it, as they should: one streams at a time. For example
// "shop-outbox" is 1341551043 and "orders" is 1765852388.
func DefaultServerID(name string) uint32 {
	sum := sha256.Sum256([]byte(name))
	return uint32(derivedServerIDBase + binary.BigEndian.Uint64(sum[:8])%derivedServerIDCount)
}

// TablesHash returns a stable fingerprint of Outbox.Tables: the hex SHA-256
// of the lowercased table names, sorted, without duplicates, joined by "\n".
// Order and letter case of the list do not change it. The checkpoint stores
// it to notice that the captured tables changed.
func (c *Config) TablesHash() string {
	tables := make([]string, len(c.Outbox.Tables))
	for i, t := range c.Outbox.Tables {
		tables[i] = strings.ToLower(t)
	}
	slices.Sort(tables)
	tables = slices.Compact(tables)
	sum := sha256.Sum256([]byte(strings.Join(tables, "\n")))
	return hex.EncodeToString(sum[:])
}
