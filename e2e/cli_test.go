package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// The command line's conventions, with the built binary: help on stdout
// with exit 0, one usage block for a mistake, machine-readable output, and
// commands that work without the credentials they do not need.

func TestHelpAndUsageErrorsOfTheBinary(t *testing.T) {
	e := &env{t: t}
	for _, args := range [][]string{{"run", "--help"}, {"offsets", "--help"}, {"offsets", "show", "-h"}, {"check", "-h"}, {"health", "--help"}} {
		out, errOut, code := e.runCmd(args...)
		if code != 0 || !strings.HasPrefix(out, "Usage:\n  tailbox "+args[0]) || errOut != "" {
			t.Errorf("tailbox %v: exit %d, want 0 with its usage on stdout\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
		}
	}
	out, errOut, code := e.runCmd("run", "-c", "x.yaml", "--dry-rn")
	if code != 2 || out != "" || strings.Count(errOut, "Usage:") != 1 ||
		!strings.HasPrefix(errOut, "tailbox: run: flag provided but not defined: -dry-rn; did you mean --dry-run?\n") {
		t.Errorf("an unknown flag: exit %d, want 2 with one usage block on stderr\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if _, errOut, code := e.runCmd("ofsets", "show"); code != 2 || !strings.HasPrefix(errOut, `tailbox: unknown command "ofsets"; did you mean "offsets"?`) {
		t.Errorf("a misspelled command: exit %d\n%s", code, errOut)
	}
}

// checkJSON is the output of `tailbox check -o json`.
type checkJSON struct {
	Passed   bool            `json:"passed"`
	Failed   int             `json:"failed"`
	Warnings int             `json:"warnings"`
	Items    []checkJSONItem `json:"items"`
}

type checkJSONItem struct {
	Name         string `json:"name"`
	Status       string `json:"status"`
	Detail       string `json:"detail"`
	Fix          string `json:"fix"`
	RunTolerates bool   `json:"run_tolerates"`
}

func TestCheckPrintsJSON(t *testing.T) {
	e := newEnv(t, "envelope")
	// A server_id no other test process on the shared server uses: check
	// fails on one that a running connector's replica holds.
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "server_id: ")
	j := strings.IndexByte(string(b[i:]), '\n')
	e.editConfig(string(b[i:i+j]), fmt.Sprintf("server_id: %d", 1_000_000+rand.IntN(1_000_000_000)))
	text, textOut, _ := e.check()
	out, errOut, code := e.runCmd("check", "-c", e.cfg, "-o", "json")
	var rep checkJSON
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("check -o json: exit %d, want 0 and JSON on stdout\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !rep.Passed || rep.Failed != 0 || len(rep.Items) != len(text) {
		t.Fatalf("check -o json: %+v; want passed with the %d items of the text output:\n%s", rep, len(text), textOut)
	}
	for _, it := range rep.Items {
		l, ok := text[it.Name]
		if !ok || !strings.EqualFold(l.status, it.Status) || l.detail != it.Detail || l.fix != it.Fix {
			t.Errorf("item %+v, text output has %+v", it, l)
		}
	}

	e.editConfig("tables: ["+e.dbn+".outbox]", "tables: ["+e.dbn+".missing]")
	out, errOut, code = e.runCmd("check", "-c", e.cfg, "-o", "json")
	rep = checkJSON{}
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("check -o json with a missing table: exit %d, want 1 and JSON on stdout\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	k := slices.IndexFunc(rep.Items, func(it checkJSONItem) bool { return it.Status == "fail" })
	if rep.Passed || rep.Failed == 0 || k < 0 || rep.Items[k].Fix == "" || !strings.Contains(rep.Items[k].Name+rep.Items[k].Detail, "missing") {
		t.Errorf("check -o json with a missing table: %+v; want a failed item naming the table, with its fix", rep)
	}
}

func TestOffsetsShowNeedsNoPasswordWithTheFileStore(t *testing.T) {
	e := newEnv(t, "envelope")
	e.saveCheckpoint()
	cp := readCheckpoint(t, e.checkpointPath())

	// The config reads the password from ${E2E_MYSQL_PASSWORD}: unset here.
	show := func(args ...string) (string, string, int) {
		cmd := exec.Command(e.command().Path, append([]string{"offsets", "show", "-c", e.cfg}, args...)...)
		for _, kv := range e.command().Env {
			if !strings.HasPrefix(kv, "E2E_MYSQL_PASSWORD=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), exitCode(err)
	}
	out, errOut, code := show()
	if code != 0 || !strings.Contains(out, "position:   "+cp.Position.File) || !strings.Contains(out, "name:       e2e-"+e.dbn+"\n") {
		t.Fatalf("offsets show without the password: exit %d, want 0 with the checkpoint at %s\nstdout:\n%s\nstderr:\n%s", code, cp.Position.File, out, errOut)
	}
	out, errOut, code = show("-o", "json")
	var got struct {
		Name     string `json:"name"`
		Position struct {
			File string `json:"file"`
			Pos  uint32 `json:"pos"`
			GTID string `json:"gtid"`
		} `json:"position"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Name != "e2e-"+e.dbn || got.Position.File != cp.Position.File || got.Position.Pos != cp.Position.Pos || got.Position.GTID != cp.Position.GTID {
		t.Fatalf("offsets show -o json without the password: exit %d, got %+v, want the checkpoint %+v\nstdout:\n%s\nstderr:\n%s", code, got, cp.Position, out, errOut)
	}
}

func TestBrokersAsACommaSeparatedString(t *testing.T) {
	e := newEnv(t, "envelope")
	e.editConfig("brokers: ["+strings.Join(e.kafka.Addrs, ",")+"]", `brokers: "`+strings.Join(e.kafka.Addrs, ", ")+`"`)
	p := e.start()
	id := "00000000-0000-0000-0000-0000000c5e01"
	e.tx(e.outboxInsert(id, "member", "m-1", "Tick", `{"n":1}`))
	recs := e.kafka.Consume(t, []string{"outbox.event.member"}, 1, 30*time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, logTail(p.stderr.String()))
	}
	if got := ids(recs); !slices.Equal(got, []string{id}) {
		t.Errorf("published %v, want [%s]", got, id)
	}
}
