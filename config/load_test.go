package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// minimal is the smallest valid file: only the settings without a default.
const minimal = `name: shop-outbox
source:
  addr: 127.0.0.1:3306
  user: cdc
outbox:
  tables: [shop.outbox]
kafka:
  brokers: [127.0.0.1:9092]
`

// env returns a lookupEnv over vars.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// problemLines returns err's problems one per string, failing the test when
// err is not a Problems matching ErrInvalid.
func problemLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want problems")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("errors.As(err, *Problems) = false for %v", err)
	}
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	if got := strings.Join(lines, "\n"); got != err.Error() {
		t.Errorf("Error() = %q, want the problems joined by newlines %q", err.Error(), got)
	}
	return lines
}

// assertLines compares problem lines exactly.
func assertLines(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseBadFiles(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{
			name: "an unknown key is reported with its line",
			yaml: `name: shop-outbox
source:
  adress: 127.0.0.1:3306
  user: cdc
outbox: {tables: [shop.outbox]}
kafka: {brokers: [127.0.0.1:9092]}
`,
			want: []string{
				"source.adress: unknown key (line 3)",
				"source.addr: required",
			},
		},
		{
			name: "an unknown top-level key is reported",
			yaml: minimal + "sourc: {}\n",
			want: []string{"sourc: unknown key (line 9); did you mean source?"},
		},
		{
			name: "a string where an integer belongs is reported once",
			yaml: strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  server_id: abc\n", 1),
			want: []string{`source.server_id: must be an integer (got "abc")`},
		},
		{
			name: "an integer out of range names the range",
			yaml: strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  server_id: -1\n", 1),
			want: []string{`source.server_id: must be an integer from 0 to 4294967295 (got "-1")`},
		},
		{
			name: "a scalar where a list belongs is reported without a second required problem",
			yaml: strings.Replace(minimal, "tables: [shop.outbox]", "tables: x", 1),
			want: []string{`outbox.tables: must be a list (got "x")`},
		},
		{
			name: "a mapping where a string belongs is reported",
			yaml: strings.Replace(minimal, "name: shop-outbox", "name: {first: shop}", 1),
			want: []string{"name: must be a string (got a mapping)"},
		},
		{
			name: "a list where a mapping belongs is reported",
			yaml: minimal + "log: [debug]\n",
			want: []string{"log: must be a mapping (got a list)"},
		},
		{
			name: "a bad list item is reported with its index",
			yaml: strings.Replace(minimal, "tables: [shop.outbox]", "tables: [shop.outbox, [a, b], shop]", 1),
			want: []string{
				"outbox.tables[1]: must be a string (got a list)",
				`outbox.tables[2]: must be schema.table (got "shop")`,
			},
		},
		{
			name: "a bad boolean is reported",
			yaml: strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  allow_minimal_metadata: yes\n", 1),
			want: []string{`source.allow_minimal_metadata: must be true or false (got "yes")`},
		},
		{
			name: "a bad duration is reported",
			yaml: minimal + "checkpoint: {interval: 10 seconds}\n",
			want: []string{`checkpoint.interval: invalid duration (got "10 seconds")`},
		},
		{
			name: "a duration without a unit is reported",
			yaml: strings.Replace(minimal, "  brokers: [127.0.0.1:9092]\n", "  brokers: [127.0.0.1:9092]\n  linger: 5\n", 1),
			want: []string{`kafka.linger: invalid duration (got "5")`},
		},
		{
			name: "a missing required setting is reported",
			yaml: strings.Replace(minimal, "name: shop-outbox\n", "", 1),
			want: []string{"name: required"},
		},
		{
			name: "an unknown topic placeholder is reported",
			yaml: strings.Replace(minimal, "  tables: [shop.outbox]\n", "  tables: [shop.outbox]\n  route: {topic: \"outbox.${foo}.${routedByValue}\"}\n", 1),
			want: []string{`outbox.route.topic: unknown placeholder ${foo}; use ${routedByValue}, ${table}, ${schema} or a group of outbox.route.topic_regex (got "outbox.${foo}.${routedByValue}")`},
		},
		{
			name: "an illegal fixed topic is reported",
			yaml: strings.Replace(minimal, "  tables: [shop.outbox]\n", "  tables: [shop.outbox]\n  route: {topic: \"shop events\"}\n", 1),
			want: []string{`outbox.route.topic: must be a Kafka topic name (1 to 249 letters, digits, '.', '_' or '-') with optional placeholders ${routedByValue}, ${table}, ${schema}, $1, ${name} (got "shop events")`},
		},
		{
			name: "an unset variable is reported without a second required problem",
			yaml: strings.Replace(minimal, "  addr: 127.0.0.1:3306\n", "  addr: ${TAILBOX_ADDR}\n  password: ${TAILBOX_MYSQL_PASSWORD}\n", 1),
			want: []string{
				"source.addr: environment variable TAILBOX_ADDR is not set",
				"source.password: environment variable TAILBOX_MYSQL_PASSWORD is not set",
			},
		},
		{
			name: "an unsupported variable syntax is reported",
			yaml: strings.Replace(minimal, "  user: cdc\n", "  user: ${TAILBOX_USER:?user}\n", 1),
			want: []string{"source.user: unsupported variable syntax ${TAILBOX_USER:?user}; use ${VAR} or ${VAR:-default}"},
		},
		{
			name: "password and password_file together are reported",
			yaml: strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  password: ${TAILBOX_MYSQL_PASSWORD}\n  password_file: /run/secrets/mysql\n", 1),
			env:  map[string]string{"TAILBOX_MYSQL_PASSWORD": "s3cret"},
			want: []string{"source.password_file: cannot be used together with source.password"},
		},
		{
			name: "an unreadable password file is reported with its path",
			yaml: minimal + "  sasl: {mechanism: PLAIN, user: svc, password_file: /nonexistent/tailbox/sasl}\n",
			want: []string{`kafka.sasl.password_file: cannot read: no such file or directory (got "/nonexistent/tailbox/sasl")`},
		},
		{
			name: "a duplicate key is reported with both lines",
			yaml: minimal + "name: other\n",
			want: []string{"name: duplicate key (line 9, first at line 1)"},
		},
		{
			name: "invalid YAML is one problem without a path",
			yaml: "name: [shop\n",
			want: []string{"invalid YAML: line 1: did not find expected ',' or ']'"},
		},
		{
			name: "a second document is reported",
			yaml: minimal + "---\nname: other\n",
			want: []string{"invalid YAML: a config file holds one document, found a second"},
		},
		{
			name: "a file that is not a mapping is reported",
			yaml: "shop-outbox\n",
			want: []string{`must be a mapping (got "shop-outbox")`},
		},
		{
			name: "an empty file reports every required setting",
			yaml: "# nothing yet\n",
			want: []string{
				"name: required",
				"source.addr: required",
				"source.user: required",
				"outbox.tables: at least one schema.table required",
				"kafka.brokers: at least one host:port required",
			},
		},
		{
			name: "several problems in one file are all reported",
			yaml: `name: shop outbox
source:
  addr: 127.0.0.1
  user: cdc
  server_id: abc
  flavour: mysql
  password: ${TAILBOX_MYSQL_PASSWORD}
  tls: {mode: verify_ca}
start: {from: "mysql-bin.000001:3"}
outbox:
  tables: [shop.outbox, Shop.Outbox]
  fields: {id: ""}
  additional: [{column: tenant, placement: envelope, as: payload}, {placement: body}]
  route: {topic: "${tenant}.events"}
  timestamp_zone: Mars/Olympus
  on_error: dead_letter
kafka:
  brokers: [kafka, "kafka:port"]
  acks: -1
  linger: -5ms
  sasl: {mechanism: PLAIN}
checkpoint: {store: kafka, interval: 1ms}
delivery: exactly_once
ha: {enabled: true}
http: {listen: localhost}
log: {level: trace, format: text}
`,
			want: []string{
				`source.server_id: must be an integer (got "abc")`,
				"source.flavour: unknown key (line 6); did you mean source.flavor?",
				"source.password: environment variable TAILBOX_MYSQL_PASSWORD is not set",
				`name: must be 1 to 100 letters, digits, '.', '_' or '-' (got "shop outbox")`,
				`source.addr: must be host:port (got "127.0.0.1")`,
				"source.tls.ca_file: required with tls.mode verify_ca",
				`start.from: binlog position must be an integer from 4 to 4294967295; expected FILE:POS (got "mysql-bin.000001:3")`,
				`outbox.tables[1]: duplicate of outbox.tables[0] (got "Shop.Outbox")`,
				"outbox.fields.id: required",
				`outbox.additional[0].as: is a key of the envelope itself (id, type, aggregateType, aggregateId, occurredAt, payload, source) (got "payload")`,
				"outbox.additional[1].column: required",
				`outbox.additional[1].placement: must be header, envelope or partition (got "body")`,
				`outbox.route.topic: unknown placeholder ${tenant}; use ${routedByValue}, ${table}, ${schema} or a group of outbox.route.topic_regex (got "${tenant}.events")`,
				`outbox.timestamp_zone: unknown time zone; use an IANA name such as UTC or Europe/Berlin (got "Mars/Olympus")`,
				"outbox.dead_letter_topic: required with on_error dead_letter",
				`kafka.brokers[0]: must be host:port (got "kafka")`,
				`kafka.brokers[1]: port must be a number from 1 to 65535 (got "kafka:port")`,
				`kafka.acks: must be all, 1 or 0 (got "-1")`,
				"kafka.linger: must be at least 0s (got -5ms)",
				"kafka.sasl.user: required",
				"kafka.sasl.password: required with sasl.mechanism PLAIN",
				"checkpoint.interval: must be at least 10ms (got 1ms)",
				`http.listen: must be host:port (got "localhost")`,
				`log.level: must be debug, info, warn or error (got "trace")`,
				`log.format: must be json or console (got "text")`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), env(tt.env), t.TempDir())
			if cfg != nil {
				t.Errorf("Parse returned a Config with an error")
			}
			assertLines(t, problemLines(t, err), tt.want)
		})
	}
}

func TestParseExpandsVariables(t *testing.T) {
	data := `# ${UNSET_IN_COMMENT} is a comment, not a value
name: ${TAILBOX_NAME:-shop-outbox}
source:
  addr: ${MYSQL_HOST}:${MYSQL_PORT:-3306}
  user: ${MYSQL_USER:-cdc}
  password: "p$${x}-${TAILBOX_MYSQL_PASSWORD}"
  server_id: ${SERVER_ID}
  heartbeat: ${HEARTBEAT:-}
  tls: {mode: "${TLS_MODE:-preferred}"}
outbox:
  tables: ["${SCHEMA}.outbox"]
  route: {topic: "${TOPIC_PREFIX:-outbox.event}.${routedByValue}"}
  fields: {timestamp: "${TS_COLUMN:-ts.${lower}}"}
kafka:
  brokers: ["${BROKER}"]
  client_id: ${CLIENT_ID}
log: {level: "${LOG_LEVEL}"}
`
	vars := map[string]string{
		"MYSQL_HOST":             "db.internal",
		"MYSQL_USER":             "", // empty: the default applies
		"TAILBOX_MYSQL_PASSWORD": "a${SCHEMA}b",
		"SERVER_ID":              "77",
		"SCHEMA":                 "shop",
		"BROKER":                 "kafka:9092",
		"CLIENT_ID":              "", // empty without a default: ""
		"LOG_LEVEL":              "debug",
	}
	cfg, err := Parse([]byte(data), env(vars), "")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	checks := []struct {
		name, got, want string
	}{
		{"the default applies when unset", cfg.Name, "shop-outbox"},
		{"variables join literal text", cfg.Source.Addr, "db.internal:3306"},
		{"the default applies when set but empty", cfg.Source.User, "cdc"},
		{"$${ is a literal ${ and a value is expanded once", cfg.Source.Password.Reveal(), "p${x}-a${SCHEMA}b"},
		{"a quoted value is expanded", string(cfg.Source.TLS.Mode), "preferred"},
		{"a list item is expanded", cfg.Outbox.Tables[0], "shop.outbox"},
		{"${routedByValue} survives", cfg.Outbox.Route.Topic, "outbox.event.${routedByValue}"},
		{"a lowercase name inside a default is left alone", cfg.Outbox.Fields.Timestamp, "ts.${lower}"},
		{"a set but empty variable without a default is empty, then derived", cfg.Kafka.ClientID, "tailbox-shop-outbox"},
		{"a string setting is expanded", cfg.Log.Level, "debug"},
		{"a quoted list item is expanded", cfg.Kafka.Brokers[0], "kafka:9092"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.Source.ServerID != 77 {
		t.Errorf("an integer from a variable: got %d, want 77", cfg.Source.ServerID)
	}
	if cfg.Source.Heartbeat != Duration(10*time.Second) {
		t.Errorf("an empty expansion of a duration keeps the default: got %s", cfg.Source.Heartbeat)
	}
}

func TestParseExpansionLimits(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{
			name: "keys are not expanded",
			yaml: minimal + "${KEY}: x\n",
			env:  map[string]string{"KEY": "log"},
			want: []string{"${KEY}: unknown key (line 9)"},
		},
		{
			name: "$VAR without braces is not expanded",
			yaml: strings.Replace(minimal, "  user: cdc\n", "  user: $USER\n  server_id: $ID\n", 1),
			env:  map[string]string{"ID": "7"},
			want: []string{`source.server_id: must be an integer (got "$ID")`},
		},
		{
			name: "an expanded value is decoded like a written one",
			yaml: strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  heartbeat: ${BEAT}\n", 1),
			env:  map[string]string{"BEAT": "soon"},
			want: []string{`source.heartbeat: invalid duration (got "soon")`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), env(tt.env), "")
			assertLines(t, problemLines(t, err), tt.want)
		})
	}
}

func TestParseAliasIsExpandedAtEachUse(t *testing.T) {
	data := strings.Replace(minimal, "  user: cdc\n", "  user: &u \"$${literal}\"\n  password: *u\n", 1)
	cfg, err := Parse([]byte(data), nil, "")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Source.User != "${literal}" || cfg.Source.Password.Reveal() != "${literal}" {
		t.Errorf("user %q, password %q; want both ${literal}", cfg.Source.User, cfg.Source.Password.Reveal())
	}
}

func TestParseAcceptsDocumentMarkers(t *testing.T) {
	for _, data := range []string{"---\n" + minimal, minimal + "---\n", minimal + "...\n"} {
		if _, err := Parse([]byte(data), nil, ""); err != nil {
			t.Errorf("Parse(%q): %v", data, err)
		}
	}
}

func TestParseMergeKey(t *testing.T) {
	data := minimal + "log:\n  <<: {level: debug, format: console}\n  format: json\n"
	cfg, err := Parse([]byte(data), nil, "")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Log != (Log{Level: "debug", Format: "json", StatusInterval: Duration(30 * time.Second)}) {
		t.Errorf("log = %+v, want the merged level and the own format", cfg.Log)
	}
}

func TestParseReadsPasswordFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	mysqlFile := filepath.Join(dir, "secrets", "mysql")
	if err := os.WriteFile(mysqlFile, []byte("s3cret pass\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	saslFile := filepath.Join(dir, "sasl")
	if err := os.WriteFile(saslFile, []byte("k@fka\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  password_file: secrets/mysql\n", 1) +
		"  sasl: {mechanism: SCRAM-SHA-512, user: svc, password_file: " + saslFile + "}\n"
	configFile := filepath.Join(dir, "tailbox.yaml")
	if err := os.WriteFile(configFile, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg, err := Parse([]byte(data), nil, dir)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := cfg.Source.Password.Reveal(); got != "s3cret pass" {
		t.Errorf("relative password_file: got %q, want %q", got, "s3cret pass")
	}
	if got := cfg.Kafka.SASL.Password.Reveal(); got != "k@fka" {
		t.Errorf("absolute sasl.password_file: got %q, want %q", got, "k@fka")
	}
	if cfg.Source.PasswordFile != "secrets/mysql" {
		t.Errorf("password_file changed to %q", cfg.Source.PasswordFile)
	}

	t.Run("Load resolves relative paths against the file's directory", func(t *testing.T) {
		t.Chdir(t.TempDir())
		cfg, err := Load(configFile)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if got := cfg.Source.Password.Reveal(); got != "s3cret pass" {
			t.Errorf("got %q, want %q", got, "s3cret pass")
		}
	})

	t.Run("a missing relative file is named by its resolved path", func(t *testing.T) {
		data := strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  password_file: secrets/none\n", 1)
		_, err := Parse([]byte(data), nil, dir)
		assertLines(t, problemLines(t, err), []string{
			`source.password_file: cannot read: no such file or directory (got "` + filepath.Join(dir, "secrets", "none") + `")`,
		})
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows a password: %v", err)
		}
	})
}

func TestCheckpointFileResolution(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(t.TempDir(), "cp.json")
	tests := []struct {
		name    string
		setting string // checkpoint.file; "" keeps the default
		baseDir string
		want    string
	}{
		{name: "the default lands next to the config file", baseDir: dir, want: filepath.Join(dir, "data", "shop-outbox.checkpoint.json")},
		{name: "a relative path is resolved against the config file's directory", setting: "state/cp.json", baseDir: dir, want: filepath.Join(dir, "state", "cp.json")},
		{name: "a relative path with dot-dot is cleaned", setting: "../cp.json", baseDir: dir, want: filepath.Join(filepath.Dir(dir), "cp.json")},
		{name: "an absolute path stays as it is", setting: abs, baseDir: dir, want: abs},
		{name: "without a base directory a relative path stays relative", setting: "state/cp.json", want: "state/cp.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := minimal
			if tt.setting != "" {
				data += "checkpoint: {file: " + tt.setting + "}\n"
			}
			cfg, err := Parse([]byte(data), nil, tt.baseDir)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if cfg.Checkpoint.File != tt.want {
				t.Fatalf("checkpoint.file = %q, want %q", cfg.Checkpoint.File, tt.want)
			}
		})
	}
	t.Run("Load resolves against the config file's absolute directory, whatever the working directory", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "tailbox.yaml"), []byte(minimal), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Chdir(dir)
		cfg, err := Load("tailbox.yaml") // a relative config path
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		t.Chdir(t.TempDir())
		if want := filepath.Join(dir, "data", "shop-outbox.checkpoint.json"); cfg.Checkpoint.File != want {
			t.Fatalf("checkpoint.file = %q, want %q", cfg.Checkpoint.File, want)
		}
	})
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: got %v, want an error wrapping os.ErrNotExist", err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Load of a missing file does not match ErrInvalid: %v", err)
	}
}

func TestParseFillsDefaults(t *testing.T) {
	data := strings.Replace(minimal, "  tables: [shop.outbox]\n", "  tables: [shop.outbox]\n  additional: [{column: tenant}, {column: region, placement: envelope, as: area}]\n", 1)
	cfg, err := Parse([]byte(data), nil, "")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Config{
		Name: "shop-outbox",
		Source: Source{
			Addr:      "127.0.0.1:3306",
			User:      "cdc",
			ServerID:  1341551043, // DefaultServerID("shop-outbox")
			Flavor:    "auto",
			TLS:       SourceTLS{Mode: "preferred"},
			Heartbeat: Duration(10 * time.Second),
		},
		Start: Start{From: "latest"},
		Outbox: Outbox{
			Tables: []string{"shop.outbox"},
			Fields: Fields{ID: "id", Key: "aggregateid", Type: "type", Payload: "payload", RouteBy: "aggregatetype"},
			Additional: []Additional{
				{Column: "tenant", Placement: "header", As: "tenant"},
				{Column: "region", Placement: "envelope", As: "area"},
			},
			Route:         Route{Topic: "outbox.event.${routedByValue}"},
			Format:        "envelope",
			PayloadType:   "auto",
			TimestampZone: "UTC",
			OnUpdate:      "warn",
			OnError:       "fail",
			Cleanup:       Cleanup{BatchSize: 500, Rate: 5000, MaxPending: 1000000},
		},
		Kafka: Kafka{
			Brokers:         []string{"127.0.0.1:9092"},
			Acks:            "all",
			Compression:     "lz4",
			ClientID:        "tailbox-shop-outbox",
			MaxMessageBytes: 1000000,
			Linger:          Duration(5 * time.Millisecond),

			TransactionInterval: Duration(100 * time.Millisecond),
		},
		Checkpoint: Checkpoint{
			Store:    "file",
			File:     "./data/shop-outbox.checkpoint.json",
			Interval: Duration(time.Second),
			Topic:    "tailbox.checkpoints",
		},
		Delivery: "at_least_once",
		HA:       HA{SessionTimeout: Duration(10 * time.Second), LeaseTopic: "tailbox.lease"},
		HTTP:     HTTP{Listen: "127.0.0.1:7391"},
		Log:      Log{Level: "info", Format: "json", StatusInterval: Duration(30 * time.Second)},
	}
	if !reflect.DeepEqual(*cfg, want) {
		t.Errorf("Parse(minimal):\n got %+v\nwant %+v", *cfg, want)
	}
}

func TestParseExplicitValuesReplaceDefaults(t *testing.T) {
	data := minimal + `  linger: 0s
http: {listen: ""}
checkpoint: {interval: ~}
`
	cfg, err := Parse([]byte(data), nil, "")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Kafka.Linger != 0 {
		t.Errorf("kafka.linger: 0s gave %s, want 0s", cfg.Kafka.Linger)
	}
	if cfg.HTTP.Listen != "" {
		t.Errorf(`http.listen: "" gave %q, want "" (disabled)`, cfg.HTTP.Listen)
	}
	if cfg.Checkpoint.Interval != Duration(time.Second) {
		t.Errorf("checkpoint.interval: ~ gave %s, want the default 1s", cfg.Checkpoint.Interval)
	}
}

// exampleEnv is the environment the example files need.
var exampleEnv = map[string]string{"TAILBOX_MYSQL_PASSWORD": "example-password"}

func TestExampleFilesAreValid(t *testing.T) {
	for _, file := range []string{"tailbox.example.yaml", "docker-compose.yaml"} {
		t.Run(file, func(t *testing.T) {
			t.Setenv("TAILBOX_MYSQL_PASSWORD", exampleEnv["TAILBOX_MYSQL_PASSWORD"])
			cfg, err := Load(file)
			if err != nil {
				t.Fatalf("Load(%s):\n%v", file, err)
			}
			if got := cfg.Source.Password.Reveal(); got != "example-password" {
				t.Errorf("source.password = %q, want it from TAILBOX_MYSQL_PASSWORD", got)
			}
		})
	}
}

func TestExampleShowsEveryKeyWithItsDefault(t *testing.T) {
	data, err := os.ReadFile("tailbox.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, path := range yamlPaths(reflect.TypeFor[Config](), "") {
		if !hasPath(doc.Content[0], strings.Split(path, ".")) {
			t.Errorf("tailbox.example.yaml does not show %s", path)
		}
	}

	cfg, err := Parse(data, env(exampleEnv), ".")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Default()
	want.Name = "shop-outbox"
	want.Source.Addr = "127.0.0.1:3306"
	want.Source.User = "cdc"
	want.Source.Password = "example-password"
	want.Outbox.Tables = []string{"shop.outbox"}
	want.Outbox.Additional = []Additional{}
	want.Kafka.Brokers = []string{"127.0.0.1:9092"}
	want.FillDerived()
	want.Checkpoint.File = filepath.Join(".", want.Checkpoint.File) // resolved against "."
	if !reflect.DeepEqual(*cfg, want) {
		t.Errorf("tailbox.example.yaml differs from the defaults:\n got %+v\nwant %+v", *cfg, want)
	}
}

// yamlPaths lists the dotted yaml paths of t's leaf settings; a list of
// structs counts as a leaf.
func yamlPaths(t reflect.Type, prefix string) []string {
	var paths []string
	for i := range t.NumField() {
		f := t.Field(i)
		p := join(prefix, f.Tag.Get("yaml"))
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
			paths = append(paths, yamlPaths(f.Type, p)...)
		} else {
			paths = append(paths, p)
		}
	}
	return paths
}

// hasPath reports whether mapping n holds the keys of path.
func hasPath(n *yaml.Node, path []string) bool {
	if len(path) == 0 {
		return true
	}
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == path[0] {
			return hasPath(n.Content[i+1], path[1:])
		}
	}
	return false
}

// The default http.listen port must not be one that the application a
// sidecar tailbox runs beside, another sidecar or a Prometheus exporter
// commonly listens on.
func TestDefaultHTTPPortAvoidsCommonPorts(t *testing.T) {
	_, p, err := net.SplitHostPort(Default().HTTP.Listen)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		from, to int
		what     string
	}{
		{80, 80, "HTTP"}, {443, 443, "HTTPS"}, {3000, 3001, "Node.js, Grafana"}, {4000, 4000, "web apps"},
		{4140, 4191, "Linkerd's proxy"}, {4195, 4195, "Redpanda Connect"}, {5000, 5001, "Flask, ASP.NET"},
		{8000, 8099, "application ports (8080 Debezium Server, 8083 Kafka Connect)"}, {8443, 8443, "HTTPS alternate"},
		{8888, 8888, "OpenTelemetry collector metrics"}, {9000, 9000, "php-fpm, MinIO"}, {9090, 9099, "Prometheus, Kafka"},
		{9100, 9999, "the Prometheus exporters' registry"}, {15000, 15090, "Istio's sidecar"},
	} {
		if port >= r.from && port <= r.to {
			t.Errorf("default http.listen port %d collides with %s (%d-%d)", port, r.what, r.from, r.to)
		}
	}
}

func TestParseReportsTheLineOfAYAMLSyntaxError(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"a list left open is reported on its line, not the one before",
			"name: shop-outbox\nsource:\n  addr: 127.0.0.1:3306\n  user: cdc\noutbox:\n  tables: [shop.outbox\nkafka:\n  brokers: [127.0.0.1:9092]\n",
			"invalid YAML: line 6: did not find expected ',' or ']'"},
		{"a tab in the indentation is reported on its line",
			"name: shop-outbox\nsource:\n  addr: 127.0.0.1:3306\n  user: cdc\n\tserver_id: 5\noutbox: {tables: [shop.outbox]}\n",
			"invalid YAML: line 5: found a tab character that violates indentation"},
		{"a key indented too far is reported on its line",
			"name: shop-outbox\nsource:\n  addr: 127.0.0.1:3306\n   user: cdc\n",
			"invalid YAML: line 4: mapping values are not allowed in this context"},
		{"an unterminated quote is reported where it opens",
			"name: shop-outbox\nsource:\n  user: \"cdc\noutbox: {tables: [shop.outbox]}\n",
			"invalid YAML: line 3: found unexpected end of stream"},
		{"a syntax error on the first line is reported on line 1",
			"name: [shop\n",
			"invalid YAML: line 1: did not find expected ',' or ']'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), nil, "")
			assertLines(t, problemLines(t, err), []string{tc.want})
		})
	}
}

func TestParseTakesBrokersAsAListOrACommaSeparatedString(t *testing.T) {
	tests := []struct {
		name, brokers string
		env           map[string]string
		want          []string
	}{
		{"a list", "[h1:9092, h2:9092]", nil, []string{"h1:9092", "h2:9092"}},
		{"a comma-separated string", `"h1:9092,h2:9092"`, nil, []string{"h1:9092", "h2:9092"}},
		{"a comma-separated string with spaces", "h1:9092 , h2:9092", nil, []string{"h1:9092", "h2:9092"}},
		{"one address", "h1:9092", nil, []string{"h1:9092"}},
		{"a variable holding a comma-separated list", "${BROKERS}", map[string]string{"BROKERS": "h1:9092,h2:9092,h3:9092"}, []string{"h1:9092", "h2:9092", "h3:9092"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(strings.Replace(minimal, "[127.0.0.1:9092]", tc.brokers, 1)), env(tc.env), "")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Kafka.Brokers, tc.want) {
				t.Errorf("brokers %q, want %q", cfg.Kafka.Brokers, tc.want)
			}
		})
	}
	t.Run("an empty item of a comma-separated string is reported with its index", func(t *testing.T) {
		_, err := Parse([]byte(strings.Replace(minimal, "[127.0.0.1:9092]", `"h1:9092,,h2:9092"`, 1)), nil, "")
		assertLines(t, problemLines(t, err), []string{"kafka.brokers[1]: required"})
	})
}

func TestParseSuggestsTheNearestKnownKey(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"a missing letter", strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  sever_id: 5\n", 1),
			"source.sever_id: unknown key (line 5); did you mean source.server_id?"},
		{"two letters swapped", minimal + "lgo: {level: info}\n", "lgo: unknown key (line 9); did you mean log?"},
		{"a dash for an underscore", minimal + "http: {}\nlog: {status-interval: 5s}\n",
			"log.status-interval: unknown key (line 10); did you mean log.status_interval?"},
		{"camel case", strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  serverId: 5\n", 1),
			"source.serverId: unknown key (line 5); did you mean source.server_id?"},
		{"nothing near", minimal + "zzz: 1\n", "zzz: unknown key (line 9)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), nil, "")
			assertLines(t, problemLines(t, err), []string{tc.want})
		})
	}
}

func TestLoadWithoutSecretsNeedsNoPassword(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tailbox.yaml")
	yaml := strings.Replace(minimal, "  user: cdc\n", "  user: cdc\n  password: ${TAILBOX_TEST_UNSET_PASSWORD}\n", 1) +
		"  sasl: {mechanism: PLAIN, user: u, password_file: missing.txt}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "TAILBOX_TEST_UNSET_PASSWORD is not set") || !strings.Contains(err.Error(), "kafka.sasl.password_file: cannot read") {
		t.Fatalf("Load: %v, want the unset variable and the missing password file", err)
	}
	cfg, err := LoadWithoutSecrets(path)
	if err != nil {
		t.Fatalf("LoadWithoutSecrets: %v", err)
	}
	if cfg.Source.Password != "" || cfg.Kafka.SASL.Password != "" || cfg.Kafka.SASL.PasswordFile != "" || cfg.Source.User != "cdc" {
		t.Errorf("LoadWithoutSecrets: source %+v, sasl %+v; want the secrets empty and the rest read", cfg.Source, cfg.Kafka.SASL)
	}
	if err := os.WriteFile(path, []byte(yaml+"nmae: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWithoutSecrets(path); err == nil || !strings.Contains(err.Error(), "nmae: unknown key") {
		t.Errorf("LoadWithoutSecrets: %v, want the other problems still reported", err)
	}
}
