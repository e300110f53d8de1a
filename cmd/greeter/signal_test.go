package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
)

// startMain runs greeter serve in a child process (this test binary, as
// main) and returns it with a client of it and a channel closed when it has
// exited.
func startMain(t *testing.T, args ...string) (cmd *exec.Cmd, c *greeter.Client, exited <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	t.Cleanup(cancel)
	cmd = exec.CommandContext(ctx, os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "greeter: serving Greeter on ")
	if err != nil || !ok {
		cancel()
		_ = cmd.Wait()
		t.Fatalf("serve's first line: %q, %v", line, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // its result stays in cmd.ProcessState
		close(done)
	}()
	t.Cleanup(func() {
		cancel() // kills the child if it is still there
		<-done
	})
	c, err = greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return cmd, c, done
}

// TestServeSignals sends greeter serve real signals: SIGTERM drains the
// calls in flight and exits 0; a second signal during the drain ends the
// process at once.
func TestServeSignals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()

	t.Run("SIGTERM drains and exits 0", func(t *testing.T) {
		cmd, c, exited := startMain(t, "--delay", "100ms")
		// A stream of 3 replies, 100ms apart: in flight once the first
		// has come.
		stream, err := c.SayHelloStreamReply(ctx, "you")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("first reply: %v", err)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		for i := 2; i <= 3; i++ {
			if _, err := stream.Recv(); err != nil {
				t.Fatalf("reply %d after SIGTERM: %v; want the call in flight to finish", i, err)
			}
		}
		<-exited
		if !cmd.ProcessState.Success() {
			t.Fatalf("serve after SIGTERM: %v; want exit 0", cmd.ProcessState)
		}
	})

	t.Run("second signal ends the drain", func(t *testing.T) {
		cmd, c, exited := startMain(t, "--grace", "1m")
		// A bidi stream the client keeps open: the drain would wait
		// for it up to --grace.
		stream, err := c.SayHelloBidiStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&greeterpb.HelloRequest{Name: "you"}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("first reply: %v", err)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// Still draining: the stream is served after SIGTERM.
		if err := stream.Send(&greeterpb.HelloRequest{Name: "again"}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("reply after SIGTERM: %v; want the stream still served during the drain", err)
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-exited:
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Fatalf("serve after a second signal: %v; want exit status 1", cmd.ProcessState)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("serve still draining 5s after a second signal")
		}
	})
}
