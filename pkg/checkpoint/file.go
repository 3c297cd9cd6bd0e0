package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Suffixes of the sidecar files (see the package documentation).
const (
	lockSuffix = ".lock"
	tmpSuffix  = ".tmp"
)

// File is an open, locked checkpoint file. Its methods are safe for
// concurrent use.
type File struct {
	path string

	mu   sync.Mutex
	lock *os.File // holds the flock; nil once closed
}

// Open creates the parent directory of path (mode 0o750) if needed and takes
// an exclusive, non-blocking flock on the sidecar path+".lock" — not on path
// itself, which Save replaces by rename, so that its inode changes and a
// lock on it would protect nothing. It does not read the checkpoint.
//
// It returns an error wrapping ErrLocked, naming path, when another process
// (or another Open of the same path in this process: flock locks belong to
// open file descriptions) holds the lock, and the file system's error when
// the directory or lock file cannot be created.
func Open(path string) (*File, error) {
	if path == "" {
		return nil, errors.New("open checkpoint: empty path")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create checkpoint directory %s: %w", dir, err)
	}
	lockPath := path + lockSuffix
	lf, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint lock %s: %w", lockPath, err)
	}
	if err := flock(lf, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock checkpoint %s: %w%s", path, ErrLocked, holder(lockPath))
		}
		return nil, fmt.Errorf("lock checkpoint %s: %w", path, err)
	}
	// Best effort, for the error of the next one who tries.
	if err := lf.Truncate(0); err == nil {
		_, _ = lf.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &File{path: path, lock: lf}, nil
}

// flock applies how to f without switching f to blocking mode (as Fd would).
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = unix.Flock(int(fd), how) }); err != nil {
		return err
	}
	return ferr
}

// holder describes the process that wrote its pid into the lock file.
func holder(lockPath string) string {
	b, err := os.ReadFile(lockPath)
	if err != nil {
		return ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d holds %s)", pid, lockPath)
}

// Path returns the checkpoint's path as given to Open.
func (f *File) Path() string { return f.path }

// Load reads and checks the checkpoint. It returns an error wrapping
// ErrNotFound when the file does not exist, ErrCorrupt (with the reason)
// when it is not a valid version-1 checkpoint, ErrClosed after Close, and
// ctx's error when ctx is already done (reading a file does not block).
// It never modifies the file.
func (f *File) Load(ctx context.Context) (*Checkpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lock == nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", f.path, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", f.path, err)
	}
	return load(f.path)
}

// Read loads the checkpoint at path like File.Load, without taking the lock,
// so that it works while a connector runs (`tailbox offsets show`). Save
// replaces the file atomically, so Read sees either the old or the new
// checkpoint.
func Read(path string) (*Checkpoint, error) {
	return load(path)
}

func load(path string) (*Checkpoint, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load checkpoint %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", path, err)
	}
	cp, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", path, err)
	}
	return cp, nil
}

// Save sets cp.Version to Version and cp.UpdatedAt to the current time (UTC)
// and replaces the checkpoint file atomically: it writes path+".tmp", fsyncs
// it, renames it over path and fsyncs the directory, so that after a crash
// the file holds either the previous or this checkpoint. It returns an error
// wrapping ErrInvalid, without writing or modifying cp, when cp.Validate
// fails; ErrClosed after Close; and the file system's error otherwise, after
// which the file holds the previous checkpoint or, if only the final fsync
// of the directory failed, this one (not yet durable).
func (f *File) Save(cp *Checkpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lock == nil {
		return fmt.Errorf("save checkpoint %s: %w", f.path, ErrClosed)
	}
	if cp == nil {
		return fmt.Errorf("save checkpoint %s: %w: nil", f.path, ErrInvalid)
	}
	if err := cp.Validate(); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", f.path, err)
	}
	cp.Version = Version
	cp.UpdatedAt = time.Now().UTC()
	data, err := encode(cp)
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", f.path, err)
	}
	if err := writeAtomic(f.path, data); err != nil {
		return fmt.Errorf("save checkpoint %s at %s: %w", f.path, cp.Position, err)
	}
	return nil
}

// writeAtomic is hashicorp/raft's file_snapshot discipline: temporary file
// in the same directory, fsync, rename, fsync the directory.
func writeAtomic(path string, data []byte) (err error) {
	tmp := path + tmpSuffix
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			_ = fh.Close() // may already be closed
			_ = os.Remove(tmp)
		}
	}()
	if _, err := fh.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// Close releases the lock. It is idempotent: later calls return nil. Load
// and Save fail with ErrClosed afterwards.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lock == nil {
		return nil
	}
	lf := f.lock
	f.lock = nil
	unlockErr := flock(lf, unix.LOCK_UN)
	if err := lf.Close(); err != nil {
		return fmt.Errorf("close checkpoint lock %s: %w", lf.Name(), err)
	}
	if unlockErr != nil {
		return fmt.Errorf("unlock checkpoint %s: %w", f.path, unlockErr)
	}
	return nil
}
