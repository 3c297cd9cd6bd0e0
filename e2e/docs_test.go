package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tailbox-cdc/tailbox/config"
)

// The documentation against the built binary: every `tailbox COMMAND
// [flags]` line of README.md and docs/*.md names a command and flags that
// the binary's -h output lists, the command-line page carries the binary's
// usage lines verbatim, and the README's minimal configuration loads.

// docFiles are the Markdown files whose command lines are checked,
// relative to the repository root.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join("..", "README.md")}, files...)
	if len(files) < 2 {
		t.Fatalf("no docs/*.md found next to README.md")
	}
	return files
}

// cliFlag is one flag of a command's -h output.
type cliFlag struct {
	value bool // takes a value (its -h line names a placeholder)
}

// cliSpec is what the binary accepts: the flags of each command path
// ("run", "offsets show"...), and the commands that only group
// subcommands.
type cliSpec struct {
	flags  map[string]map[string]cliFlag
	groups map[string][]string // "offsets" -> show, set
}

// flagLine is a flag line of Go's flag.PrintDefaults: "  -name PLACEHOLDER".
var flagLine = regexp.MustCompile(`^  -([a-zA-Z0-9-]+)(?: ([A-Z]+))?$`)

// usageCommand is a command line of `tailbox -h`'s Usage block.
var usageCommand = regexp.MustCompile(`^  tailbox ([a-z]+)(?: +([a-z]+))?\b`)

// readCLISpec runs `tailbox -h` and `tailbox CMD [SUB] -h` for every
// command the usage names and collects their flags.
func readCLISpec(t *testing.T, e *env) (cliSpec, string) {
	t.Helper()
	top, errOut, code := e.runCmd("-h")
	if code != 0 || !strings.Contains(top, "Usage:\n") {
		t.Fatalf("tailbox -h: exit %d, want 0 with a usage block\nstdout:\n%s\nstderr:\n%s", code, top, errOut)
	}
	spec := cliSpec{flags: map[string]map[string]cliFlag{}, groups: map[string][]string{}}
	for _, l := range strings.Split(top, "\n") {
		m := usageCommand.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		path := m[1]
		if m[2] != "" {
			// "tailbox offsets show ...": offsets groups show.
			if !slices.Contains(spec.groups[m[1]], m[2]) {
				spec.groups[m[1]] = append(spec.groups[m[1]], m[2])
			}
			path = m[1] + " " + m[2]
		}
		if _, ok := spec.flags[path]; ok {
			continue
		}
		if path == "help" {
			spec.flags[path] = map[string]cliFlag{}
			continue
		}
		out, errOut, code := e.runCmd(append(strings.Fields(path), "-h")...)
		if code != 0 {
			t.Fatalf("tailbox %s -h: exit %d\nstdout:\n%s\nstderr:\n%s", path, code, out, errOut)
		}
		flags := map[string]cliFlag{}
		for _, fl := range strings.Split(out, "\n") {
			if fm := flagLine.FindStringSubmatch(fl); fm != nil {
				flags[fm[1]] = cliFlag{value: fm[2] != ""}
			}
		}
		spec.flags[path] = flags
	}
	for _, want := range []string{"run", "check", "offsets show", "offsets set", "health", "version", "help"} {
		if _, ok := spec.flags[want]; !ok {
			t.Fatalf("tailbox -h lists no %q command; the parser of its usage block is out of date:\n%s", want, top)
		}
	}
	if len(spec.flags["run"]) == 0 {
		t.Fatalf("tailbox run -h lists no flags; the parser of flag lines is out of date")
	}
	return spec, top
}

// docCommand is one `tailbox ...` invocation found in a document.
type docCommand struct {
	where string // file:line
	text  string
}

// commandStart finds "tailbox" (or a path ending in /tailbox) followed by
// a space and a lowercase word, at the start of a code line or an inline
// code span.
var commandStart = regexp.MustCompile(`^(?:\$ )?(?:[./\w-]*/)?tailbox +([a-z][a-z-]*)\b`)

// inlineCode is a `code span`.
var inlineCode = regexp.MustCompile("`([^`\n]+)`")

// notCommands are inline code spans that begin with "tailbox WORD" but
// quote output rather than invoke a command: log messages. A command
// renamed to one of these words would escape the check, so keep the list
// to what the documents quote.
var notCommands = map[string]bool{
	"tailbox starting": true, // the first log line of run
}

// docCommands extracts the tailbox invocations of a Markdown file: lines
// of fenced code blocks that start with tailbox, and inline code spans
// that do.
func docCommands(t *testing.T, file string) []docCommand {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []docCommand
	fenced := false
	for i, line := range strings.Split(string(b), "\n") {
		where := fmt.Sprintf("%s:%d", strings.TrimPrefix(file, "../"), i+1)
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			if commandStart.MatchString(trimmed) {
				cmds = append(cmds, docCommand{where, trimmed})
			}
			continue
		}
		for _, m := range inlineCode.FindAllStringSubmatch(line, -1) {
			span := strings.TrimSpace(m[1])
			if commandStart.MatchString(span) && !notCommands[span] {
				cmds = append(cmds, docCommand{where, span})
			}
		}
	}
	return cmds
}

// checkCommand returns what is wrong with one documented invocation, or "".
// It understands the usage syntax the documents use: [optional] parts,
// a | b alternatives inside brackets, placeholders in capitals, and shell
// comments, pipes and redirections after the command.
func (s cliSpec) checkCommand(text string) string {
	var tokens []string
	depth := 0
scan:
	for _, tok := range strings.Fields(text) {
		switch {
		case strings.HasPrefix(tok, "#"), tok == "&&", tok == ";", tok == ">", tok == "2>", strings.HasPrefix(tok, ">"), strings.HasPrefix(tok, "2>"):
			break scan
		case tok == "|" && depth == 0:
			break scan
		case tok == "|":
			continue
		}
		depth += strings.Count(tok, "[") - strings.Count(tok, "]")
		tok = strings.Trim(tok, "[]();,")
		tok = strings.TrimSuffix(tok, "`")
		if tok != "" {
			tokens = append(tokens, tok)
		}
	}
	if len(tokens) < 2 {
		return "no command"
	}
	cmd := tokens[1]
	rest := tokens[2:]
	path := cmd
	if subs, ok := s.groups[cmd]; ok {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			// "tailbox offsets" alone, or with -h, shows the group's usage.
			if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" {
				return ""
			}
			return fmt.Sprintf("%q needs a subcommand (%s)", cmd, strings.Join(subs, ", "))
		}
		if !slices.Contains(subs, rest[0]) && !isPlaceholder(rest[0]) {
			return fmt.Sprintf("unknown subcommand %q of %q (the binary has %s)", rest[0], cmd, strings.Join(subs, ", "))
		}
		if isPlaceholder(rest[0]) {
			return ""
		}
		path, rest = cmd+" "+rest[0], rest[1:]
	}
	flags, ok := s.flags[path]
	if !ok {
		return fmt.Sprintf("unknown command %q", cmd)
	}
	if path == "help" {
		if len(rest) > 1 {
			return "help takes one COMMAND"
		}
		if len(rest) == 1 && !isPlaceholder(rest[0]) {
			if _, ok := s.flags[rest[0]]; !ok && s.groups[rest[0]] == nil {
				return fmt.Sprintf("help of unknown command %q", rest[0])
			}
		}
		return ""
	}
	for i := 0; i < len(rest); i++ {
		tok := rest[i]
		if !strings.HasPrefix(tok, "-") {
			if isPlaceholder(tok) || tok == "..." {
				continue
			}
			return fmt.Sprintf("unexpected argument %q: tailbox %s takes flags only", tok, path)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(tok, "-"), "=")
		if name == "h" || name == "help" {
			continue
		}
		f, ok := flags[name]
		if !ok {
			return fmt.Sprintf("tailbox %s has no flag %s (its -h lists %s)", path, tok, flagNames(flags))
		}
		if !f.value {
			if hasValue {
				return fmt.Sprintf("flag %s of tailbox %s takes no value", tok, path)
			}
			continue
		}
		if !hasValue {
			if i+1 >= len(rest) || (strings.HasPrefix(rest[i+1], "-") && rest[i+1] != "-") {
				return fmt.Sprintf("flag %s of tailbox %s needs a value", tok, path)
			}
			i++
			value = rest[i]
		}
		if (name == "o" || name == "output") && !isPlaceholder(value) {
			for _, v := range strings.Split(value, "|") {
				if v != "text" && v != "json" {
					return fmt.Sprintf("%s %s: the binary knows text and json", tok, value)
				}
			}
		}
	}
	return ""
}

// isPlaceholder reports whether tok is a usage placeholder (FILE, SPEC,
// COMMAND) rather than a literal word.
func isPlaceholder(tok string) bool {
	return tok != "" && strings.ToUpper(tok) == tok && strings.ToLower(tok) != tok
}

func flagNames(flags map[string]cliFlag) string {
	var names []string
	for n := range flags {
		names = append(names, "-"+n)
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

func TestDocumentedCommandLinesMatchTheBinary(t *testing.T) {
	e := &env{t: t}
	spec, _ := readCLISpec(t, e)
	total := 0
	for _, file := range docFiles(t) {
		for _, c := range docCommands(t, file) {
			total++
			if problem := spec.checkCommand(c.text); problem != "" {
				t.Errorf("%s: `%s`: %s", c.where, c.text, problem)
			}
		}
	}
	// The README and the command-line page hold dozens of invocations; a
	// handful means the extraction broke, and the test would pass on nothing.
	t.Logf("checked %d tailbox command lines", total)
	if total < 30 {
		t.Errorf("found only %d tailbox command lines in README.md and docs/*.md; the extraction is out of date", total)
	}
}

func TestCommandLinePageHasTheUsageOfTheBinary(t *testing.T) {
	e := &env{t: t}
	_, top := readCLISpec(t, e)
	b, err := os.ReadFile(filepath.Join("..", "docs", "command-line.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var usage []string
	in := false
	for _, l := range strings.Split(top, "\n") {
		switch {
		case l == "Usage:":
			in = true
		case in && strings.HasPrefix(l, "  tailbox "):
			usage = append(usage, strings.TrimPrefix(l, "  "))
		case in:
			in = false
		}
	}
	if len(usage) < 5 {
		t.Fatalf("tailbox -h: found %d usage lines, want the command list:\n%s", len(usage), top)
	}
	block := strings.Join(usage, "\n")
	if !strings.Contains(doc, "```\n"+block+"\n```") {
		t.Errorf("docs/command-line.md does not hold the usage lines of `tailbox -h` as one code block; want:\n%s", block)
	}
}

// minimalConfig is the README's "A minimal configuration" YAML block.
func minimalConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## A minimal configuration\n")
	if i < 0 {
		t.Fatal(`README.md has no "## A minimal configuration" section`)
	}
	s = s[i:]
	start := strings.Index(s, "```yaml\n")
	if start < 0 {
		t.Fatal(`README.md's "A minimal configuration" has no yaml block`)
	}
	s = s[start+len("```yaml\n"):]
	end := strings.Index(s, "```")
	if end < 0 {
		t.Fatal("unterminated yaml block")
	}
	return s[:end]
}

func TestReadmeMinimalConfigurationLoads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tailbox.yaml")
	if err := os.WriteFile(path, []byte(minimalConfig(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TAILBOX_MYSQL_PASSWORD", "secret")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("README's minimal configuration: %v", err)
	}
	// What the README says the defaults are.
	if want := filepath.Join(dir, "data", cfg.Name+".checkpoint.json"); cfg.Checkpoint.File != want {
		t.Errorf("checkpoint.file = %q, README says %q", cfg.Checkpoint.File, want)
	}
	if cfg.HTTP.Listen != "127.0.0.1:7391" {
		t.Errorf("http.listen = %q, README says 127.0.0.1:7391", cfg.HTTP.Listen)
	}
	if cfg.Delivery != config.AtLeastOnce {
		t.Errorf("delivery = %v, README says at-least-once", cfg.Delivery)
	}
	// The binary agrees: check refuses nothing in the file (exit 2 is a
	// configuration error); it then fails to reach the example hosts.
	e := &env{t: t}
	if _, errOut, code := e.runCmd("offsets", "show", "-c", path); code == 2 {
		t.Errorf("tailbox offsets show -c <README's minimal configuration>: exit 2\n%s", errOut)
	}
}
