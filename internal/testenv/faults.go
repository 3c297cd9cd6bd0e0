package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// killWait bounds waiting for a killed process to disappear.
const killWait = 30 * time.Second

// Kill ends a private instance from [StartMariaDB] with SIGKILL — a crash,
// without the clean shutdown of [MySQLServer.Stop] — and waits until the
// process is gone. [MySQLServer.Start] starts it again (InnoDB recovers as
// after a power-less crash: the operating system still has every write).
func (m *MySQLServer) Kill(t testing.TB) {
	t.Helper()
	m.mustBePrivate(t)
	m.closeConn()
	b, err := os.ReadFile(filepath.Join(m.Dir, "mariadbd.pid"))
	if err != nil {
		t.Fatalf("read the pid file of MariaDB in %s: %v", m.Dir, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file of MariaDB in %s holds %q", m.Dir, b)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 MariaDB (pid %d): %v", pid, err)
	}
	deadline := time.Now().Add(killWait)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("MariaDB (pid %d) still running %v after SIGKILL", pid, killWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processAlive reports whether pid runs (a zombie waiting to be reaped has
// finished).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// DevKafka is a cmd/devkafka broker running as a subprocess with a data
// directory, so that it can be killed and started again on the same address
// with its topics and records: for tests of a broker that crashes or
// restarts. Get one from [StartDevKafka]. Its methods call t.Fatal: use
// them from the test goroutine.
type DevKafka struct {
	// Addr is the broker's host:port; it stays the same across restarts.
	Addr string
	// DataDir is the broker's -data-dir.
	DataDir string

	bin    string
	ready  string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *SyncBuffer
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads: the
// output of a process a test reads while it runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *SyncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *SyncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartDevKafka builds cmd/devkafka ([Binary]) and starts it on a free port
// of 127.0.0.1 with a new data directory and 3 partitions per topic, waits
// until it listens, and kills it at t's cleanup. A [KafkaCluster] with only
// Addrs set (KafkaCluster{Addrs: []string{d.Addr}}) consumes from it.
func StartDevKafka(t testing.TB) *DevKafka {
	t.Helper()
	dir := t.TempDir()
	d := &DevKafka{
		bin:     Binary(t, "devkafka"),
		DataDir: filepath.Join(dir, "data"),
		ready:   filepath.Join(dir, "ready"),
	}
	t.Cleanup(func() {
		d.mu.Lock()
		cmd, exited := d.cmd, d.exited
		d.mu.Unlock()
		if cmd != nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("find a free port for devkafka: %v", err)
		}
		d.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		err = d.start()
		if err == nil {
			return d
		}
		if attempt == 3 {
			t.Fatalf("start devkafka on %s: %v", d.Addr, err)
		}
	}
}

// Start starts a broker stopped by Kill or Stop again, on the same address
// with the same data directory.
func (d *DevKafka) Start(t testing.TB) {
	t.Helper()
	if err := d.start(); err != nil {
		t.Fatalf("restart devkafka on %s: %v", d.Addr, err)
	}
}

func (d *DevKafka) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		return fmt.Errorf("devkafka on %s is already running", d.Addr)
	}
	_ = os.Remove(d.ready) // a killed broker leaves its ready file
	stderr := &SyncBuffer{}
	cmd := exec.Command(d.bin, "-listen", d.Addr, "-partitions", strconv.Itoa(KafkaPartitions),
		"-data-dir", d.DataDir, "-ready-file", d.ready, "-log-level", "warn")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(d.ready); err == nil {
			d.cmd, d.exited, d.stderr = cmd, exited, stderr
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("devkafka exited during start-up (%v):\n%s", cmd.ProcessState, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("devkafka did not listen within 30s:\n%s", stderr.String())
		}
	}
}

// Kill ends the broker with SIGKILL (a crash: it saves no state beyond what
// it wrote as it went) and waits for it to exit.
func (d *DevKafka) Kill(t testing.TB) {
	t.Helper()
	d.end(t, syscall.SIGKILL)
}

// Stop ends the broker with SIGTERM (a clean shutdown that saves its state)
// and waits for it to exit; it fails t unless the exit status is 0.
func (d *DevKafka) Stop(t testing.TB) {
	t.Helper()
	d.end(t, syscall.SIGTERM)
}

func (d *DevKafka) end(t testing.TB, sig syscall.Signal) {
	t.Helper()
	d.mu.Lock()
	cmd, exited, stderr := d.cmd, d.exited, d.stderr
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		t.Fatalf("devkafka on %s is not running", d.Addr)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal devkafka: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(killWait):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("devkafka still running %v after %v:\n%s", killWait, sig, stderr.String())
	}
	if sig == syscall.SIGTERM && !cmd.ProcessState.Success() {
		t.Fatalf("devkafka exited with %v after SIGTERM, want status 0:\n%s", cmd.ProcessState, stderr.String())
	}
}
