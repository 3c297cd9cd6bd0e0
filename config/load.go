package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the configuration file at path and parses it with Parse, taking
// variables from the process environment (os.LookupEnv) and resolving
// relative password_file and checkpoint.file paths against the file's
// directory, made absolute: where tailbox reads and writes does not depend
// on the working directory it was started in (a supervisor's is often /).
// Every error
// matches ErrInvalid (the CLI exits 2): a file that cannot be read is an
// error that also wraps the os error (errors.Is(err, fs.ErrNotExist)); every
// other error is a Problems.
func Load(path string) (*Config, error) {
	return load(path, true)
}

// LoadWithoutSecrets is Load for a command that connects to nothing that
// needs a credential (offsets show with the file store, health): it leaves
// the secret settings — source.password, source.password_file,
// kafka.sasl.password, kafka.sasl.password_file — empty, without expanding
// their variables or reading their files, and reports no problem about
// them, so that it works where the credentials are not at hand.
func LoadWithoutSecrets(path string) (*Config, error) {
	return load(path, false)
}

func load(path string, secrets bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%w: resolve the directory of %s: %w", ErrInvalid, path, err)
	}
	return parse(data, os.LookupEnv, dir, secrets)
}

// secretPaths are the settings LoadWithoutSecrets leaves out.
var secretPaths = map[string]bool{
	"source.password": true, "source.password_file": true,
	"kafka.sasl.password": true, "kafka.sasl.password_file": true,
}

// Parse builds a Config from YAML data:
//
//  1. the YAML is parsed (one document; invalid YAML is one problem, and
//     nothing else is checked);
//  2. the values are decoded over Default(), expanding ${VAR} and
//     ${VAR:-default} in each scalar value with lookupEnv (nil means no
//     variable is set) — never in keys, comments or values under unknown
//     keys. Unknown keys, duplicate keys, values of the wrong type and unset
//     variables are problems, each with its dotted path. A null value, or an
//     empty one for a number, boolean or duration, keeps the default;
//  3. source.password_file and kafka.sasl.password_file are read (relative
//     to baseDir; "" means the working directory), trailing newlines trimmed,
//     into the matching Password; setting a password and its file together
//     is a problem;
//  4. FillDerived; then checkpoint.file, its default included, when
//     relative, is joined to baseDir ("" leaves it relative to the working
//     directory); then Validate.
//
// It returns every problem of every step at once, as a Problems error that
// matches ErrInvalid, and a nil Config; a validation problem about a setting
// that already failed to decode is left out. Variable syntax: a name is
// [A-Z_][A-Z0-9_]*; ${VAR:-default} uses default (literal text up to the
// first "}") when VAR is unset or empty; $${ is a literal ${; $VAR without
// braces is not expanded; any other ${...} — such as route.topic's
// ${routedByValue} — is left as written, except an upper-case name with
// another shell operator (${VAR:?msg}, ${VAR-x}), which is a problem; an
// unset VAR without a default is a problem. Expansion is one pass: a
// variable's value is never expanded again.
func Parse(data []byte, lookupEnv func(string) (string, bool), baseDir string) (*Config, error) {
	return parse(data, lookupEnv, baseDir, true)
}

// parse is Parse; without secrets it leaves out the secretPaths.
func parse(data []byte, lookupEnv func(string) (string, bool), baseDir string, secrets bool) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	root, err := parseYAML(data)
	if err != nil {
		return nil, err
	}

	cfg := Default()
	d := decoder{lookupEnv: lookupEnv, skipSecrets: !secrets}
	if d.skipSecrets {
		for p := range secretPaths {
			d.failedPaths = append(d.failedPaths, p)
		}
	}
	if root != nil {
		d.decode(root, reflect.ValueOf(&cfg).Elem(), "")
	}
	d.readPasswordFile("source", &cfg.Source.Password, cfg.Source.PasswordFile, baseDir)
	d.readPasswordFile("kafka.sasl", &cfg.Kafka.SASL.Password, cfg.Kafka.SASL.PasswordFile, baseDir)
	cfg.FillDerived()
	if cfg.Checkpoint.File != "" && !filepath.IsAbs(cfg.Checkpoint.File) && baseDir != "" {
		cfg.Checkpoint.File = filepath.Join(baseDir, cfg.Checkpoint.File)
	}

	problems := d.problems
	var invalid Problems
	if errors.As(cfg.Validate(), &invalid) {
		for _, p := range invalid {
			if !d.failed(p.Path) {
				problems = append(problems, p)
			}
		}
	}
	if err := problems.err(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// parseYAML returns the root node of the single document in data, nil for an
// empty document.
func parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, Problems{{Reason: "invalid YAML: " + syntaxError(data, err)}}
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) && (err != nil || !emptyDocument(&next)) {
		return nil, Problems{{Reason: "invalid YAML: a config file holds one document, found a second"}}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// yamlLine is the "line N: " that yaml.v3 puts before a syntax error.
var yamlLine = regexp.MustCompile(`^line \d+: `)

// syntaxError phrases err, yaml.v3's error for the first document of data,
// as "line N: problem" with N the line on which the parser meets the
// problem. yaml.v3's own line is not that one: it names the line where the
// enclosing construct began when there is one, and for parser (not
// scanner) errors counts lines from 0. So N is found as the first line at
// which a prefix of data fails with the very same error.
func syntaxError(data []byte, err error) string {
	msg := yamlLine.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")
	end := 0
	for line := 1; end < len(data); line++ {
		next := bytes.IndexByte(data[end:], '\n')
		if next < 0 {
			end = len(data)
		} else {
			end += next + 1
		}
		var doc yaml.Node
		if perr := yaml.NewDecoder(bytes.NewReader(data[:end])).Decode(&doc); perr != nil && perr.Error() == err.Error() {
			return fmt.Sprintf("line %d: %s", line, msg)
		}
	}
	return msg
}

// emptyDocument reports whether doc holds nothing, as after a trailing "---".
func emptyDocument(doc *yaml.Node) bool {
	return len(doc.Content) == 0 || (doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].ShortTag() == "!!null")
}

// envName is the name of a variable Parse expands. Lowercase and mixed-case
// names (${routedByValue}) are not expanded.
var envName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// envNamePrefix is the variable name at the start of a ${...}.
var envNamePrefix = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*`)

// decoder walks a yaml.Node tree, collecting problems.
type decoder struct {
	lookupEnv func(string) (string, bool)
	problems  Problems
	// skipSecrets leaves the secretPaths undecoded (LoadWithoutSecrets).
	skipSecrets bool
	// failedPaths are the settings whose value could not be decoded: Parse
	// leaves out validation problems at or under them.
	failedPaths []string
}

// fail reports a setting whose value could not be decoded or completed.
func (d *decoder) fail(path, reason, got string) {
	d.problems.add(path, reason, got)
	d.failedPaths = append(d.failedPaths, path)
}

// failed reports whether the value at path, or a setting above it, failed.
func (d *decoder) failed(path string) bool {
	for _, f := range d.failedPaths {
		if under(path, f) {
			return true
		}
	}
	return false
}

// expandString expands the variables of one scalar value at path.
func (d *decoder) expandString(s, path string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		if i > 0 && s[i-1] == '$' { // $${ is a literal ${
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 { // unterminated: not a variable
			b.WriteString(s[i:])
			return b.String()
		}
		ref := s[i : i+end+1] // ${...}
		s = s[i+end+1:]
		inner := ref[2 : len(ref)-1]
		name, def, hasDefault := strings.Cut(inner, ":-")
		switch {
		case envName.MatchString(name):
			if v, ok := d.lookupEnv(name); ok && (v != "" || !hasDefault) {
				b.WriteString(v)
			} else if hasDefault {
				b.WriteString(def)
			} else {
				d.fail(path, "environment variable "+name+" is not set", "")
			}
		case shellOperator(inner):
			d.fail(path, "unsupported variable syntax "+ref+"; use ${VAR} or ${VAR:-default}", "")
		default: // not ours, such as ${routedByValue}
			b.WriteString(ref)
		}
	}
}

// shellOperator reports whether inner, the text of a ${...}, is an upper-case
// name followed by a shell operator Parse does not support (${VAR:?msg},
// ${VAR-x}, ${VAR:+x}, ${VAR=x}).
func shellOperator(inner string) bool {
	name := envNamePrefix.FindString(inner)
	return name != "" && len(inner) > len(name) && strings.IndexByte(":-?+=", inner[len(name)]) >= 0
}

// decode sets v from n, reporting problems at path. A null value, or an
// empty scalar for a non-string setting, leaves v as it is (its default).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if v.Type() == reflect.TypeFor[Addrs]() && n.Kind == yaml.ScalarNode {
		if s, ok := d.scalar(n, path, ""); ok {
			v.Set(reflect.ValueOf(splitAddrs(s)))
		}
		return
	}
	if v.Type() == reflect.TypeFor[Duration]() {
		if s, ok := d.scalar(n, path, "invalid duration"); ok && s != "" {
			dur, err := parseDuration(s)
			if err != nil {
				d.fail(path, "invalid duration", q(s))
				return
			}
			v.Set(reflect.ValueOf(dur))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, "must be a list", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), index(path, i))
		}
		v.Set(s)
	case reflect.String:
		if s, ok := d.scalar(n, path, "must be a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, path, "must be true or false"); ok && s != "" {
			switch s {
			case "true", "True", "TRUE":
				v.SetBool(true)
			case "false", "False", "FALSE":
				v.SetBool(false)
			default:
				d.fail(path, "must be true or false", q(s))
			}
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if s, ok := d.scalar(n, path, "must be an integer"); ok && s != "" {
			i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, v.Type().Bits())
			if err != nil {
				d.intProblem(path, s, err, v.Type().Bits(), true)
				return
			}
			v.SetInt(i)
		}
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		if s, ok := d.scalar(n, path, "must be an integer"); ok && s != "" {
			u, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, v.Type().Bits())
			if _, serr := strconv.ParseInt(s, 10, 64); err != nil && serr == nil {
				err = strconv.ErrRange // negative
			}
			if err != nil {
				d.intProblem(path, s, err, v.Type().Bits(), false)
				return
			}
			v.SetUint(u)
		}
	default:
		panic("config: no decoding for " + v.Type().String()) // a programming error in config.go
	}
}

// intProblem reports an integer that does not parse or is out of range.
func (d *decoder) intProblem(path, s string, err error, bits int, signed bool) {
	if errors.Is(err, strconv.ErrRange) {
		if signed {
			d.fail(path, fmt.Sprintf("must be an integer from %d to %d", int64(-1)<<(bits-1), uint64(1)<<(bits-1)-1), q(s))
		} else {
			d.fail(path, fmt.Sprintf("must be an integer from 0 to %d", uint64(1)<<bits-1), q(s))
		}
		return
	}
	d.fail(path, "must be an integer", q(s))
}

// scalar returns n's value with its variables expanded, or reports reason
// when n is a mapping or a list. Expanding here, as each value is decoded,
// leaves keys, comments and values under unknown keys alone, and expands
// an aliased value from its text, once per use.
func (d *decoder) scalar(n *yaml.Node, path, reason string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, reason, describe(n))
		return "", false
	}
	if !strings.Contains(n.Value, "${") {
		return n.Value, true
	}
	return d.expandString(n.Value, path), true
}

// decodeStruct sets the fields of struct v from mapping n, by yaml tag.
// Merge keys (<<: *anchor) are applied first, so the mapping's own keys win.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, "must be a mapping", describe(n))
		return
	}
	fields := map[string]int{}
	for i := range v.NumField() {
		if name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			fields[name] = i
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			d.merge(n.Content[i+1], v, path)
		}
	}
	seen := map[string]int{} // key -> line
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.problems.addf(path, describe(k), "key must be a string (line %d)", k.Line)
			continue
		}
		p := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.problems.addf(p, "", "duplicate key (line %d, first at line %d)", k.Line, line)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			if near := Closest(k.Value, slices.Collect(maps.Keys(fields))); near != "" {
				d.problems.addf(p, "", "unknown key (line %d); did you mean %s?", k.Line, join(path, near))
			} else {
				d.problems.addf(p, "", "unknown key (line %d)", k.Line)
			}
			continue
		}
		if d.skipSecrets && secretPaths[p] {
			continue
		}
		d.decode(val, v.Field(f), p)
	}
}

// merge applies the value of a merge key: a mapping or a list of mappings.
func (d *decoder) merge(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		for _, item := range n.Content {
			d.merge(item, v, path)
		}
		return
	}
	d.decodeStruct(n, v, path)
}

// readPasswordFile reads a password_file into password; section is the
// setting's parent path ("source", "kafka.sasl").
func (d *decoder) readPasswordFile(section string, password *Secret, file, baseDir string) {
	if file == "" {
		return
	}
	path := section + ".password_file"
	if *password != "" {
		d.problems.add(path, "cannot be used together with "+section+".password", "")
		return
	}
	if !filepath.IsAbs(file) && baseDir != "" {
		file = filepath.Join(baseDir, file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		reason := err.Error()
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			reason = pe.Err.Error()
		}
		d.fail(path, "cannot read: "+reason, q(file))
		d.failedPaths = append(d.failedPaths, section+".password")
		return
	}
	*password = Secret(strings.TrimRight(string(data), "\r\n"))
}

// describe formats a node for Problem.Got: a scalar quoted, else its kind.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return describe(n.Alias)
	}
	return q(n.Value)
}

// join appends key to a dotted path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// index appends a list index to a path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// splitAddrs splits a comma-separated list of addresses, trimming spaces
// around each; "" is no address.
func splitAddrs(s string) Addrs {
	if strings.TrimSpace(s) == "" {
		return Addrs{}
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return Addrs(parts)
}
