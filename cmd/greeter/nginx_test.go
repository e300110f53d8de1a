package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// These tests put a real nginx (Debian's nginx-light, grpc_pass) in front
// of greeter serve processes. Without nginx they skip, unless
// GREETER_REQUIRE_INTEROP=1 (which .ci/run sets) makes that a failure.

// nginxConf is a configuration that runs as an unprivileged foreground
// process with every path under its prefix, and proxies gRPC to the
// upstreams round robin. x-upstream tells the test which backend served.
const nginxConf = `daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream greeters {
%[2]s    keepalive 16;
  }
  server {
    listen %[3]s http2;
    location / {
      grpc_pass grpc://greeters;
      add_header x-upstream $upstream_addr always;
    }
  }
}
`

// startNginx runs nginx on 127.0.0.1 in front of backends and returns its
// address; it is stopped at the end of the test.
func startNginx(t *testing.T, backends []string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, serr := os.Stat(bin); serr != nil {
			msg := "no nginx on PATH or in /usr/sbin; install Debian's nginx-light"
			if os.Getenv("GREETER_REQUIRE_INTEROP") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	dir := t.TempDir()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // for nginx to take
	var servers strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&servers, "    server %s;\n", b)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, servers.String(), addr), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) } // graceful
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "error.log")); err == nil {
				t.Logf("nginx error.log:\n%s", b)
			}
		}
	})
	// Ready when it accepts connections.
	deadline := time.Now().Add(defaultTestTimeout)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s", err, b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s: %v", addr, err)
		}
	}
}

// Behind nginx: calls spread over three greeter serve processes, a
// deadline reaches the servers through the proxy (a server's minimum
// budget refuses a call with too little left), and a backend stopped
// mid-load costs no call with greeter's retry policy.
func TestBehindNginx(t *testing.T) {
	var addrs []string
	var procs []*exec.Cmd
	var exits []<-chan struct{}
	for range 3 {
		cmd, c, exited := startMain(t, "--min-budget", "500ms", "--grace", "1s")
		procs, exits = append(procs, cmd), append(exits, exited)
		addrs = append(addrs, c.Conn().Target())
		c.Close()
	}
	proxy := startNginx(t, addrs)

	c, err := greeter.NewClient(proxy, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()

	// Spread: nginx balances each call, whatever connection it came on.
	served := map[string]int{}
	for range 30 {
		var header metadata.MD
		if _, err := c.SayHello(ctx, "proxied", grpc.Header(&header)); err != nil {
			t.Fatalf("call through nginx: %v", err)
		}
		served[strings.Join(header.Get("x-upstream"), ",")]++
	}
	for _, a := range addrs {
		if served[a] < 5 {
			t.Errorf("through nginx, 30 calls went %v; want each of %v to serve about 10", served, addrs)
			break
		}
	}

	// The deadline reaches the server: it refuses a call with 300ms left
	// and serves one with 2s.
	code, _, errOut := runCmd("call", "--addr", proxy, "--timeout", "300ms")
	if code != 1 || !strings.Contains(errOut, "needs at least 500ms of budget") {
		t.Errorf("call --timeout 300ms through nginx = %d, %q; want the server's refusal for too little budget", code, errOut)
	}
	if code, out, errOut := runCmd("call", "--addr", proxy, "--timeout", "2s"); code != 0 {
		t.Errorf("call --timeout 2s through nginx = %d, %q, %q; want the greeting", code, out, errOut)
	}

	// A backend stopped mid-load: nginx moves on to the others, and the
	// retry policy covers a call caught on it.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// The callers stop however the test ends: after a t.Fatal below they
	// would otherwise spin on a closed client until the process exits.
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.SayHello(ctx, "load"); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	waitOK := func(n int64) {
		for start := ok.Load(); ok.Load() < start+n && failed.Load() == 0; {
			select {
			case <-ctx.Done():
				t.Fatal("the load through nginx stalled")
			case <-time.After(time.Millisecond):
			}
		}
	}
	waitOK(100)
	if err := procs[1].Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-exits[1]
	waitOK(300)
	stopLoad()
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d calls through nginx failed while a backend stopped; first: %v", f, f+ok.Load(), firstErr.Load())
	}
}
