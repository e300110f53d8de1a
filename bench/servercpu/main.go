// Command servercpu compares the CPU time gRPC servers spend per call. It
// starts each server, then, round after round, loads each in turn with
// greeter bench and reads the server's CPU time (user and system, from
// /proc) before and after. On a machine whose cores the load generator
// shares, CPU per call is a steadier measure than QPS, and rounds taken in
// turn give paired ratios on which a drifting machine weighs alike.
//
//	go build -o /tmp/greeter ./cmd/greeter
//	cd bench && go build -o /tmp/grpcgo-greeter ./grpcgo-greeter
//	go run ./servercpu -greeter /tmp/greeter \
//	    'grpc-go=/tmp/grpcgo-greeter --addr 127.0.0.1:0' \
//	    'greeter=/tmp/greeter serve --addr 127.0.0.1:0' \
//	    'workers-1-per-cpu=/tmp/greeter serve --addr 127.0.0.1:0 --stream-workers 2'
//
// Each argument is NAME=COMMAND, a built binary and its arguments (not go
// run, whose child the CPU times would miss); the first is the baseline of
// the ratios. A command must listen on 127.0.0.1 and print its address
// (127.0.0.1:PORT), as greeter serve and grpcgo-greeter do. Linux only.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-greeter/greeter/bench/internal/paired"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: fixed at 100 on
// Linux whatever the kernel's tick rate.
const userHZ = 100

type server struct {
	name, addr string
	cmd        *exec.Cmd
	cpu, qps   []float64 // per round: ns of server CPU per call, calls per second
}

func main() {
	greeter := flag.String("greeter", "greeter", "`path` of the greeter binary whose bench command loads the servers")
	rounds := flag.Int("rounds", 12, "rounds; each loads every server once")
	calls := flag.Int("calls", 20000, "calls per server per round")
	concurrency := flag.Int("concurrency", 50, "greeter bench --concurrency")
	flag.Parse()
	if flag.NArg() < 2 {
		fmt.Fprintln(os.Stderr, "usage: servercpu [flags] NAME=COMMAND NAME=COMMAND...")
		os.Exit(2)
	}
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
	}()
	for _, arg := range flag.Args() {
		name, command, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "servercpu: %q: want NAME=COMMAND\n", arg)
			os.Exit(2)
		}
		s, err := start(name, command)
		if err != nil {
			fmt.Fprintf(os.Stderr, "servercpu: %v\n", err)
			os.Exit(1)
		}
		servers = append(servers, s)
	}
	load := func(s *server, n int) (cpuNs, qps float64, err error) {
		before, err := cpuTicks(s.cmd.Process.Pid)
		if err != nil {
			return 0, 0, err
		}
		out, err := exec.Command(*greeter, "bench", "--addr", s.addr, "--json",
			"--concurrency", strconv.Itoa(*concurrency), "--total", strconv.Itoa(n)).Output()
		if err != nil {
			return 0, 0, fmt.Errorf("greeter bench against %s: %w", s.name, err)
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
			fmt.Fprintf(os.Stderr, "servercpu: %v\n", err)
			os.Exit(1)
		}
	}
	for r := range *rounds {
		for i := range servers {
			// Each round starts with the next server, so that no server
			// always follows the same one.
			s := servers[(r+i)%len(servers)]
			cpu, qps, err := load(s, *calls)
			if err != nil {
				fmt.Fprintf(os.Stderr, "servercpu: %v\n", err)
				os.Exit(1)
			}
			s.cpu, s.qps = append(s.cpu, cpu), append(s.qps, qps)
		}
	}
	base := servers[0]
	fmt.Printf("%d rounds of %d calls at concurrency %d; ratios are the median of the rounds' ratios to %s\n\n", *rounds, *calls, *concurrency, base.name)
	fmt.Printf("%-16s %14s %8s %12s %10s %8s\n", "server", "CPU/call", "ratio", "rounds less", "QPS", "ratio")
	for _, s := range servers {
		cpuRatio, fewer := paired.Ratio(s.cpu, base.cpu, func(x, b float64) bool { return x < b })
		qpsRatio, _ := paired.Ratio(s.qps, base.qps, func(x, b float64) bool { return x > b })
		fmt.Printf("%-16s %11.1f µs %7.3fx %7d/%-4d %10.0f %7.3fx\n", s.name, paired.Median(s.cpu)/1e3, cpuRatio, fewer, len(s.cpu), paired.Median(s.qps), qpsRatio)
	}
}

// start runs command and waits, 10s at most, for it to print its address.
func start(name, command string) (*server, error) {
	args := strings.Fields(command)
	cmd := exec.Command(args[0], args[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout // one stream to scan; the address may be on either
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	addrRE := regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a := addrRE.FindString(sc.Text()); a != "" {
				found <- a
				break
			}
		}
		io.Copy(io.Discard, out) // keep the server from blocking on a full pipe
	}()
	select {
	case a := <-found:
		return &server{name: name, addr: a, cmd: cmd}, nil
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s: no 127.0.0.1 address printed in 10s", name)
	}
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
