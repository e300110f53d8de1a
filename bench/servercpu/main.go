// Command servercpu compares the CPU time gRPC servers spend per call. It
// starts each server, then, round after round, loads each in turn with
// greeter bench and reads the server's CPU time (user and system, from
// /proc) before and after. On a machine whose cores the load generator
// shares, CPU per call is a steadier measure than QPS, and rounds taken in
// turn give paired ratios on which a drifting machine weighs alike. From the
// repository root:
//
//	go build -o /tmp/greeter ./cmd/greeter
//	cd bench && go build -o /tmp/grpcgo-greeter ./grpcgo-greeter
//	go run ./servercpu -greeter /tmp/greeter \
//	    'grpc-go=/tmp/grpcgo-greeter --addr 127.0.0.1:0' \
//	    'greeter=/tmp/greeter serve --addr 127.0.0.1:0' \
//	    'workers-1-per-cpu=/tmp/greeter serve --addr 127.0.0.1:0 --stream-workers 2'
//
// Each argument is NAME=COMMAND, a built binary and its arguments split at
// spaces (not go run, whose child the CPU times would miss); the first is
// the baseline of the ratios. A command must listen on 127.0.0.1 and print
// its address (127.0.0.1:PORT), as greeter serve and grpcgo-greeter do.
//
// Every server runs in a process group of its own, which servercpu ends
// (SIGTERM, then SIGKILL after two seconds) when it returns, fails or gets
// SIGINT, SIGTERM or SIGHUP; should servercpu itself be killed, the kernel
// sends each server SIGKILL. Linux only.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/grpc-greeter/greeter/bench/internal/paired"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: fixed at 100 on
// Linux whatever the kernel's tick rate.
const userHZ = 100

// stopGrace is how long a server has to exit after SIGTERM before its
// process group gets SIGKILL.
const stopGrace = 2 * time.Second

func main() {
	os.Exit(run())
}

func run() int {
	greeter := flag.String("greeter", "greeter", "`path` of the greeter binary whose bench command loads the servers")
	rounds := flag.Int("rounds", 12, "rounds; each loads every server once")
	calls := flag.Int("calls", 20000, "calls per server per round")
	concurrency := flag.Int("concurrency", 50, "greeter bench --concurrency")
	flag.Parse()
	if flag.NArg() < 2 {
		fmt.Fprintln(os.Stderr, "usage: servercpu [flags] NAME=COMMAND NAME=COMMAND...")
		return 2
	}
	type spec struct{ name, command string }
	var specs []spec
	for _, arg := range flag.Args() {
		name, command, ok := strings.Cut(arg, "=")
		if !ok || name == "" || strings.TrimSpace(command) == "" {
			fmt.Fprintf(os.Stderr, "servercpu: %q: want NAME=COMMAND\n", arg)
			return 2
		}
		specs = append(specs, spec{name, command})
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	fail := func(err error) int {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "servercpu: interrupted; stopping the servers")
			return 130
		}
		fmt.Fprintf(os.Stderr, "servercpu: %v\n", err)
		return 1
	}

	for _, sp := range specs {
		s, err := start(ctx, sp.name, sp.command)
		if s != nil {
			servers = append(servers, s) // stopped by the deferred call, also on error
		}
		if err != nil {
			return fail(err)
		}
	}
	load := func(s *server, n int) (cpuNs, qps float64, err error) {
		before, err := cpuTicks(s.cmd.Process.Pid)
		if err != nil {
			return 0, 0, err
		}
		var stderr bytes.Buffer
		bench := exec.CommandContext(ctx, *greeter, "bench", "--addr", s.addr, "--json",
			"--concurrency", strconv.Itoa(*concurrency), "--total", strconv.Itoa(n))
		bench.Stderr = &stderr
		out, err := bench.Output()
		if err != nil {
			return 0, 0, fmt.Errorf("greeter bench against %s: %w: %s", s.name, err, strings.TrimSpace(stderr.String()))
		}
		after, err := cpuTicks(s.cmd.Process.Pid)
		if err != nil {
			return 0, 0, err
		}
		var rep struct {
			OK  int64   `json:"ok"`
			QPS float64 `json:"qps"`
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			return 0, 0, err
		}
		if rep.OK != int64(n) {
			return 0, 0, fmt.Errorf("%s: %d of %d calls failed", s.name, int64(n)-rep.OK, n)
		}
		return float64(after-before) * (1e9 / userHZ) / float64(n), rep.QPS, nil
	}
	for _, s := range servers { // warm up: connections, caches, goroutine stacks
		if _, _, err := load(s, *calls/2); err != nil {
			return fail(err)
		}
	}
	for r := range *rounds {
		for i := range servers {
			// Each round starts with the next server, so that no server
			// always follows the same one.
			s := servers[(r+i)%len(servers)]
			cpu, qps, err := load(s, *calls)
			if err != nil {
				return fail(err)
			}
			s.cpu, s.qps = append(s.cpu, cpu), append(s.qps, qps)
		}
	}
	base := servers[0]
	fmt.Printf("%d rounds of %d calls at concurrency %d; ratios are the median of the rounds' ratios to %s\n\n", *rounds, *calls, *concurrency, base.name)
	fmt.Printf("%-18s %12s %8s %12s %10s %8s\n", "server", "CPU/call", "ratio", "rounds less", "QPS", "ratio")
	for _, s := range servers {
		cpuRatio, fewer := paired.Ratio(s.cpu, base.cpu, func(x, b float64) bool { return x < b })
		qpsRatio, _ := paired.Ratio(s.qps, base.qps, func(x, b float64) bool { return x > b })
		fmt.Printf("%-18s %9.1f µs %7.3fx %7d/%-4d %10.0f %7.3fx\n", s.name, paired.Median(s.cpu)/1e3, cpuRatio, fewer, len(s.cpu), paired.Median(s.qps), qpsRatio)
	}
	return 0
}

// server is one server process under test.
type server struct {
	name, addr string
	cmd        *exec.Cmd
	exited     chan struct{} // closed when cmd.Wait has returned
	cpu, qps   []float64     // per round: ns of server CPU per call, calls per second
}

// addrRE matches the address a server prints.
var addrRE = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)

// start runs command in a process group of its own and waits, 10s at most,
// for it to print its address. It returns the server also with an error
// once the process has started, so that the caller stops it.
func start(ctx context.Context, name, command string) (*server, error) {
	args := strings.Fields(command)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: stop signals the whole group, so that
		// nothing the command started is left behind, and a Ctrl-C at the
		// terminal reaches servercpu, which stops the servers itself.
		Setpgid: true,
		// Should servercpu die without stopping it (SIGKILL), the kernel
		// kills the server.
		Pdeathsig: syscall.SIGKILL,
	}
	w := &addrWriter{found: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = w, w // one stream to scan; the address may be on either
	cmd.WaitDelay = stopGrace     // Wait returns even if a child still holds the output
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case s.addr = <-w.found:
		return s, nil
	case <-s.exited:
		return s, fmt.Errorf("%s: exited before printing a 127.0.0.1 address (%v):\n%s", name, cmd.ProcessState, w.output())
	case <-timeout.C:
		return s, fmt.Errorf("%s: no 127.0.0.1 address printed in 10s:\n%s", name, w.output())
	case <-ctx.Done():
		return s, ctx.Err()
	}
}

// stop ends the server's process group: SIGTERM, then SIGKILL if the server
// has not exited within stopGrace. Processes the server started in the group
// get SIGKILL in any case.
func (s *server) stop() {
	pgid := s.cmd.Process.Pid // the leader's pid, with Setpgid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopGrace):
	}
	syscall.Kill(-pgid, syscall.SIGKILL) // ESRCH when the group is gone
	<-s.exited
}

// addrWriter takes a server's output: it sends the first 127.0.0.1 address
// on found, and keeps the first few KiB of output for error messages.
type addrWriter struct {
	mu    sync.Mutex
	buf   []byte
	sent  bool
	found chan string
}

func (w *addrWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) < 4096 {
		w.buf = append(w.buf, p[:min(len(p), 4096-len(w.buf))]...)
	}
	if !w.sent {
		if a := addrRE.Find(w.buf); a != nil {
			w.found <- string(a)
			w.sent = true
		}
	}
	return len(p), nil
}

func (w *addrWriter) output() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(string(w.buf))
}

// cpuTicks returns the user and system CPU time of process pid, all its
// threads, in 1/userHZ s.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is the 3rd field of the line, utime the 14th.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/PID/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, errors.Join(err1, err2)
}
