package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func sample() *Checkpoint {
	return &Checkpoint{
		Name:     "shop-outbox",
		Position: binlog.Position{File: "mysql-bin.000003", Pos: 1234, GTID: "0-1-42"},
		Skip:     2,
		NextTxn:  "0-1-43",
		Server: Server{
			Flavor:         "mariadb",
			ServerID:       1,
			BinlogBasename: "mysql-bin",
			FileStartTime:  time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		},
		TablesHash: "sha256:9f86d081884c7d65",
	}
}

func openTemp(t *testing.T) (*File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "shop-outbox.checkpoint.json")
	f, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f, path
}

func TestEncodingMatchesGolden(t *testing.T) {
	cp := sample()
	cp.Version = Version
	cp.UpdatedAt = time.Date(2025, 6, 1, 12, 34, 56, 789000000, time.UTC)
	got, err := encode(cp)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "checkpoint.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encoding differs from %s (run with -update):\n%s", golden, got)
	}
	back, err := decode(want)
	if err != nil || !reflect.DeepEqual(back, cp) {
		t.Errorf("decode(golden) = %+v, %v; want %+v", back, err, cp)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	f, path := openTemp(t)
	if _, err := f.Load(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load before any Save = %v, want ErrNotFound", err)
	}
	before := time.Now()
	for _, cp := range []*Checkpoint{
		sample(),
		{Name: "gtid-only", Position: binlog.Position{GTID: "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5"}},
		{Name: "file-only", Position: binlog.Position{File: "binlog.000001", Pos: 4}, Server: Server{Flavor: "mysql", ServerUUID: "3e11fa47-71ca-11e1-9e33-c80aa9429562"}},
	} {
		if err := f.Save(cp); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if cp.Version != Version || cp.UpdatedAt.Before(before) || cp.UpdatedAt.Location() != time.UTC {
			t.Errorf("Save set version %d, updated_at %s", cp.Version, cp.UpdatedAt)
		}
		got, err := f.Load(context.Background())
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if !reflect.DeepEqual(got, cp) {
			t.Errorf("Load = %+v, want %+v", got, cp)
		}
		read, err := Read(path)
		if err != nil || !reflect.DeepEqual(read, cp) {
			t.Errorf("Read = %+v, %v; want %+v", read, err, cp)
		}
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data, []byte("}\n")) || !bytes.Contains(data, []byte("\n  \"name\": ")) {
		t.Errorf("file is not indented JSON with a trailing newline:\n%s", data)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{filepath.Base(path), filepath.Base(path) + ".lock"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("directory holds %v after Save, want %v (no temporary files)", names, want)
	}
}

func TestSaveRejectsInvalidCheckpoints(t *testing.T) {
	tests := []struct {
		name    string
		cp      *Checkpoint
		wantErr string
	}{
		{"a nil checkpoint", nil, "invalid checkpoint: nil"},
		{"no name and no position", &Checkpoint{},
			"invalid checkpoint: name: required\nposition: file or gtid required"},
		{"a file position before the binlog header", &Checkpoint{Name: "n", Position: binlog.Position{File: "b.000001", Pos: 3}},
			"invalid checkpoint: position.pos: must be at least 4 with a file (got 3)"},
		{"skip without the transaction", &Checkpoint{Name: "n", Position: binlog.Position{GTID: "0-1-1"}, Skip: 3},
			"invalid checkpoint: next_txn: required when skip > 0 (got skip 3)"},
		{"a negative skip", &Checkpoint{Name: "n", Position: binlog.Position{GTID: "0-1-1"}, Skip: -1},
			"invalid checkpoint: skip: must not be negative (got -1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, path := openTemp(t)
			err := f.Save(tt.cp)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Save = %v, want ErrInvalid", err)
			}
			if want := "save checkpoint " + path + ": " + tt.wantErr; err.Error() != want {
				t.Errorf("Save =\n%s\nwant\n%s", err, want)
			}
			if tt.cp != nil && (tt.cp.Version != 0 || !tt.cp.UpdatedAt.IsZero()) {
				t.Error("Save modified a checkpoint it rejected")
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Save wrote a file: %v", err)
			}
		})
	}
}

func TestLoadRejectsCorruptFiles(t *testing.T) {
	valid, err := encode(&Checkpoint{Version: 1, Name: "n", Position: binlog.Position{File: "b.000001", Pos: 4}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content string
		reason  string // in the error message
	}{
		{"garbage", "\x00\x01not json at all", "invalid character"},
		{"an empty file", "", "unexpected end of JSON input"},
		{"truncated JSON", string(valid[:len(valid)/2]), "unexpected end of JSON input"},
		{"version 99", strings.Replace(string(valid), `"version": 1`, `"version": 99`, 1), "version: unsupported (got 99, this tailbox reads 1)"},
		{"no version", strings.Replace(string(valid), `"version": 1,`, ``, 1), "version: required"},
		{"a missing position", `{"version": 1, "name": "n", "server": {}, "skip": 0, "updated_at": "2025-01-01T00:00:00Z"}`, "position: file or gtid required"},
		{"a missing name", strings.Replace(string(valid), `"name": "n"`, `"name": ""`, 1), "name: required"},
		{"an unknown field", strings.Replace(string(valid), `"name": "n"`, `"name": "n", "nmae": "x"`, 1), `unknown field "nmae"`},
		{"a second object", string(valid) + "{}\n", "after top-level value"},
		{"a negative position", strings.Replace(string(valid), `"pos": 4`, `"pos": -4`, 1), "cannot unmarshal number -4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, path := openTemp(t)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Stat(path)
			for _, load := range []func() (*Checkpoint, error){func() (*Checkpoint, error) { return f.Load(context.Background()) }, func() (*Checkpoint, error) { return Read(path) }} {
				cp, err := load()
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Load = %+v, %v; want ErrCorrupt", cp, err)
				}
				if !strings.Contains(err.Error(), tt.reason) || !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file and %q", err, tt.reason)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil || string(after) != tt.content {
				t.Errorf("Load changed the file: %q, %v", after, err)
			}
			if st, _ := os.Stat(path); !st.ModTime().Equal(before.ModTime()) || st.Mode() != before.Mode() {
				t.Error("Load touched the file")
			}
		})
	}
}

func TestOpenLocksTheFile(t *testing.T) {
	f, path := openTemp(t)
	if err := f.Save(sample()); err != nil {
		t.Fatal(err)
	}

	second, err := Open(path)
	if !errors.Is(err, ErrLocked) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	t.Logf("second Open: %v", err)

	// The lock follows the file across Save's rename.
	if err := f.Save(sample()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open after a Save = %v, want ErrLocked", err)
	}
	// Read needs no lock.
	if _, err := Read(path); err != nil {
		t.Fatalf("Read while locked: %v", err)
	}

	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := f.Load(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close = %v, want ErrClosed", err)
	}
	if err := f.Save(sample()); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close = %v, want ErrClosed", err)
	}

	again, err := Open(path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer again.Close()
	if cp, err := again.Load(context.Background()); err != nil || cp.Name != "shop-outbox" {
		t.Fatalf("Load after reopening = %+v, %v", cp, err)
	}
}

func TestOpenCreatesTheDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "cp.json")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := os.Stat(filepath.Dir(path))
	if err != nil || !st.IsDir() || st.Mode().Perm()&^0o750 != 0 {
		t.Fatalf("directory: %v, %v", st.Mode(), err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created the checkpoint itself: %v", err)
	}
	if f.Path() != path {
		t.Errorf("Path() = %s", f.Path())
	}
}

// An interrupted Save leaves path.tmp behind: Load ignores it, the next Save
// overwrites it.
func TestLeftoverTempFileIsIgnored(t *testing.T) {
	f, path := openTemp(t)
	if err := f.Save(sample()); err != nil {
		t.Fatal(err)
	}
	want, err := f.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, junk := range []string{`{"version": 1, "name": "half-writt`, "", "garbage"} {
		if err := os.WriteFile(path+tmpSuffix, []byte(junk), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := f.Load(context.Background())
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Load with a leftover temp file = %+v, %v; want %+v", got, err, want)
		}
	}

	next := sample()
	next.Position.Pos = 9999
	if err := f.Save(next); err != nil {
		t.Fatalf("Save over a leftover temp file: %v", err)
	}
	if _, err := os.Stat(path + tmpSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp file still there after Save: %v", err)
	}
	if got, err := f.Load(context.Background()); err != nil || got.Position.Pos != 9999 {
		t.Fatalf("Load = %+v, %v", got, err)
	}

	t.Run("with no checkpoint yet, a leftover temp file is not a checkpoint", func(t *testing.T) {
		f, path := openTemp(t)
		if err := os.WriteFile(path+tmpSuffix, []byte(`{"version": 1}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Load(context.Background()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load = %v, want ErrNotFound", err)
		}
	})
}

func TestReadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.json")
	if _, err := Read(path); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Read = %v, want ErrNotFound naming the path", err)
	}
}
