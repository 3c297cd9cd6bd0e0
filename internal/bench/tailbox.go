package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// Benchmark settings of every tailbox run.
const (
	// defaultInterval is tailbox's default checkpoint interval, of the
	// runs not timed by their checkpoint (live). Timed ranges use
	// options.interval, by default the same: tailbox also writes its
	// checkpoint when the stream pauses with everything acknowledged (10ms
	// after catching up), so the range's end is saved without waiting for
	// the interval.
	defaultInterval = time.Second
	// pollInterval is how often the bench reads the checkpoint file. A
	// range is timed to the save that reached its end (the file's change
	// time), not to the poll that saw it, so polling can be rare: a poll
	// every 5ms cost the bench ~6% of a core, taken from the process it
	// measures.
	pollInterval    = 50 * time.Millisecond
	tailboxServerID = 7998
)

// tailboxConfig writes the configuration of a run named name capturing
// table, producing to topic prefix.<aggregatetype>, checkpointing every
// interval, and returns its path and the checkpoint file's path. acks=all
// and the other Kafka settings are tailbox's defaults; HTTP is off so that
// runs never compete for a port.
func (e *env) tailboxConfig(name, table, prefix string, interval time.Duration) (cfgPath, cpFile string, err error) {
	return e.tailboxConfigDelivery(name, table, prefix, interval, false)
}

// tailboxConfigDelivery is tailboxConfig, with delivery: exactly_once and
// the checkpoint in the Kafka topic <prefix>.checkpoints when eo is set.
func (e *env) tailboxConfigDelivery(name, table, prefix string, interval time.Duration, eo bool) (cfgPath, cpFile string, err error) {
	dir := filepath.Join(e.work, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	cpFile = filepath.Join(dir, "checkpoint.json")
	_ = os.Remove(cpFile)
	cpLine := fmt.Sprintf("checkpoint: {file: %q, interval: %s}\n", cpFile, interval)
	if eo {
		cpLine = fmt.Sprintf("checkpoint: {store: kafka, topic: %q, interval: %s}\ndelivery: exactly_once\n", prefix+".checkpoints", interval)
	}
	cleanup := ""
	if e.o.cleanup {
		cleanup = "  cleanup: {enabled: true, rate: 100000000, batch_size: 1000}\n"
	}
	cfg := fmt.Sprintf(`name: bench-%s
source: {addr: %q, user: %q, password: %q, server_id: %d}
outbox:
  tables: [%s]
  route: {topic: %q}
%skafka: {brokers: [%q], acks: all}
%shttp: {listen: ""}
log: {level: info, format: json}
`, name, e.o.mysqlAddr, e.o.user, e.o.password, tailboxServerID, table, prefix+".${routedByValue}",
		cleanup, e.o.brokers, cpLine)
	cfgPath = filepath.Join(dir, "tailbox.yaml")
	return cfgPath, cpFile, os.WriteFile(cfgPath, []byte(cfg), 0o600)
}

// topicPrefix is the topic prefix of a scenario in this run.
func (e *env) topicPrefix(scenario string) string { return "bench." + e.runID + "." + scenario }

// proc is a running tailbox process (the binary, or this binary's
// connector subcommand for profiling).
type proc struct {
	cmd     *exec.Cmd
	started time.Time // just before exec
	cpFile  string
	exited  chan struct{}
	waitErr error

	mu    sync.Mutex
	times map[string]time.Time // first log time of each message
	tail  []string             // last lines of stderr, for errors
}

// usage is what a finished run cost.
type usage struct {
	cpu       time.Duration
	maxRSSMiB float64
}

// startTailbox execs argv (whose configuration has checkpoint file cpFile).
// Its JSON log lines are parsed for message times; warnings and errors are
// copied to stderr.
func startTailbox(argv []string, cpFile string) (*proc, error) {
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), cpFile: cpFile, exited: make(chan struct{}), times: map[string]time.Time{}}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		p.readLog(stderr)
	}()
	go func() {
		<-logsDone
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var l struct {
			Level, Message string
			Time           time.Time
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Level == "warn" || l.Level == "error" || l.Level == "fatal" {
			fmt.Fprintln(os.Stderr, "tailbox:", line)
		}
		p.mu.Lock()
		if _, ok := p.times[l.Message]; !ok && !l.Time.IsZero() {
			p.times[l.Message] = l.Time
		}
		if p.tail = append(p.tail, line); len(p.tail) > 10 {
			p.tail = p.tail[1:]
		}
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// logged returns how long after exec the process first logged msg.
func (p *proc) logged(msg string) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.times[msg]
	return t.Sub(p.started), ok
}

// streamStart returns the time from exec until the connector logged
// "starting" (configuration loaded, source connected and checked, start
// position resolved; streaming begins next).
func (p *proc) streamStart() (time.Duration, bool) { return p.logged("starting") }

func (p *proc) exitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Errorf("tailbox exited early (%v); last log lines:\n  %s", p.waitErr, strings.Join(p.tail, "\n  "))
}

// waitCheckpoint waits until the checkpoint file reaches to and returns the
// time from exec to the save that reached it.
func (p *proc) waitCheckpoint(to binlogPos, limit time.Duration) (time.Duration, error) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-p.exited:
			return 0, p.exitError()
		case <-t.C:
		}
		if cp, saved, err := readCheckpoint(p.cpFile); err == nil && to.reachedBy(cp.Position) {
			// Clamped to the poll: the two clocks may differ a little.
			return min(max(saved.Sub(p.started), 0), time.Since(p.started)), nil
		}
		if time.Since(p.started) > limit {
			p.kill()
			return 0, fmt.Errorf("checkpoint did not reach %s within %s", to, limit)
		}
	}
}

// readCheckpoint reads the checkpoint file at path and returns when it was
// saved (changeTime). The file is stat'ed before and after the read, and a
// read that a save replaced meanwhile fails (the next poll reads the new
// file).
func readCheckpoint(path string) (*checkpoint.Checkpoint, time.Time, error) {
	before, err := os.Stat(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	cp, err := checkpoint.Read(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	after, err := os.Stat(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !os.SameFile(before, after) || !changeTime(before).Equal(changeTime(after)) {
		return nil, time.Time{}, fmt.Errorf("%s was replaced while read", path)
	}
	return cp, changeTime(before), nil
}

// stop sends SIGTERM, waits for a clean exit and returns the process's
// resource usage: CPU time from rusage, peak RSS from /proc/PID/status
// (VmHWM) read just before the signal. rusage's ru_maxrss is no use here:
// Linux carries the parent's high-water mark over fork and exec into the
// child's, so it reports at least the bench's own RSS.
func (p *proc) stop() (usage, error) {
	hwm, herr := vmHWM(p.cmd.Process.Pid)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		p.kill()
		return usage{}, fmt.Errorf("tailbox did not stop within 60s of SIGTERM")
	}
	if p.waitErr != nil {
		return usage{}, fmt.Errorf("stop: %w", p.exitError())
	}
	if herr != nil {
		return usage{}, herr
	}
	ru := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), maxRSSMiB: hwm}, nil
}

// vmHWM returns the peak resident set size of process pid in MiB.
func vmHWM(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read peak RSS: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM %q: %w", v, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// tailboxArgv is the command line of a tailbox run.
func (e *env) tailboxArgv(cfgPath string, from binlogPos) []string {
	return []string{e.o.tailbox, "run", "-c", cfgPath, "--from", from.String()}
}

// profiledArgv is the command line of the same run in this binary's
// connector subcommand, writing NAME.cpu.pprof, NAME.heap.pprof and
// NAME.block.pprof to o.profileDir; it also returns the first two paths.
func (e *env) profiledArgv(name, cfgPath string, from binlogPos) (argv []string, cpu, heap string, err error) {
	dir, err := filepath.Abs(e.o.profileDir)
	if err != nil {
		return nil, "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", "", err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, "", "", err
	}
	cpu, heap = filepath.Join(dir, name+".cpu.pprof"), filepath.Join(dir, name+".heap.pprof")
	return []string{self, "connector", "-c", cfgPath, "--from", from.String(), "-cpuprofile", cpu, "-memprofile", heap,
		"-blockprofile", filepath.Join(dir, name+".block.pprof")}, cpu, heap, nil
}

// rangeRun is one timed run of a range: exec until checkpointed.
type rangeRun struct {
	total  time.Duration // exec → checkpoint at the end of the range
	stream time.Duration // "starting" log → checkpoint at the end
	usage
}

// runRange runs argv (configured with checkpoint file cpFile) until its
// checkpoint reaches to, then stops it.
func runRange(argv []string, cpFile string, to binlogPos) (rangeRun, error) {
	p, err := startTailbox(argv, cpFile)
	if err != nil {
		return rangeRun{}, err
	}
	total, err := p.waitCheckpoint(to, 15*time.Minute)
	if err != nil {
		return rangeRun{}, err
	}
	u, err := p.stop()
	if err != nil {
		return rangeRun{}, err
	}
	r := rangeRun{total: total, stream: total, usage: u}
	if s, ok := p.streamStart(); ok {
		r.stream = total - s
	}
	return r, nil
}

// dropTopics deletes topics from the broker once a measurement is done,
// so that every measurement starts on a broker holding the same data:
// devkafka keeps every record in memory, and a broker grown by the earlier
// rounds' millions of records spends more (GC included) on each request.
func (e *env) dropTopics(topics ...string) error {
	admin, err := sarama.NewClusterAdmin(strings.Split(e.o.brokers, ","), sarama.NewConfig())
	if err != nil {
		return fmt.Errorf("drop topics %v: %w", topics, err)
	}
	defer admin.Close()
	for _, t := range topics {
		if err := admin.DeleteTopic(t); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("drop topic %s: %w", t, err)
		}
	}
	return nil
}

// consumer returns a franz-go client reading topics from their start; it
// creates them when they do not exist yet.
func (e *env) consumer(topics ...string) (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(strings.Split(e.o.brokers, ",")...),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AllowAutoTopicCreation(),
		kgo.MetadataMinAge(50*time.Millisecond),
		kgo.FetchMaxWait(time.Second),
	)
}

// poll returns the records of one poll; fetch errors other than the end
// of ctx fail it.
func poll(ctx context.Context, cl *kgo.Client) ([]*kgo.Record, error) {
	fs := cl.PollFetches(ctx)
	var errs []error
	for _, fe := range fs.Errors() {
		if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
			continue
		}
		errs = append(errs, fmt.Errorf("fetch %s[%d]: %w", fe.Topic, fe.Partition, fe.Err))
	}
	return fs.Records(), errors.Join(errs...)
}

// consumeN reads n records of topic from its start.
func (e *env) consumeN(topic string, n int, limit time.Duration) ([]*kgo.Record, error) {
	cl, err := e.consumer(topic)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		recs, err := poll(ctx, cl)
		if err != nil {
			return got, err
		}
		got = append(got, recs...)
		if ctx.Err() != nil {
			return got, fmt.Errorf("consume %s: %d of %d records within %s", topic, len(got), n, limit)
		}
	}
	return got[:n], nil
}

// header returns the value of header key of r.
func header(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}
