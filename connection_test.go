package greeter_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// closedAddr returns an address on 127.0.0.1 where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// attemptCounter counts the attempts grpc makes of SayHello, as grpc
// reports them to stats handlers: one Begin per attempt, retries included.
type attemptCounter struct{ n atomic.Int64 }

type methodKey struct{}

func (a *attemptCounter) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, methodKey{}, info.FullMethodName)
}

func (a *attemptCounter) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if b, ok := s.(*stats.Begin); ok && b.IsClient() && ctx.Value(methodKey{}) == "/Greeter/SayHello" {
		a.n.Add(1)
	}
}
func (a *attemptCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (a *attemptCounter) HandleConn(context.Context, stats.ConnStats) {}

// connectionError asserts err explains a missing connection to addr: with
// code, phase (for a deadline), and each substring a person relies on.
func connectionError(t *testing.T, err error, code codes.Code, addr string, want ...string) *greeter.ConnectionError {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("err = %v; want code %v", err, code)
	}
	var ce *greeter.ConnectionError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v; want a *greeter.ConnectionError in it", err)
	}
	if ce.Addr != addr {
		t.Errorf("Addr = %q; want %q", ce.Addr, addr)
	}
	if code == codes.DeadlineExceeded {
		var de *greeter.DeadlineError
		if !errors.As(err, &de) || de.Phase != greeter.PhaseConnecting || de.Connection != ce {
			t.Errorf("err = %v; want a DeadlineError in PhaseConnecting carrying the ConnectionError", err)
		}
	}
	msg := status.Convert(err).Message()
	for _, w := range append(want, addr) {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
	return ce
}

// With the short deadlines the guides recommend, a refused port says so,
// with the address: the phase comes from the channel's state, the cause
// from grpc's picker.
func TestConnectionRefusedExplained(t *testing.T) {
	addr := closedAddr(t)
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(testContext(t), 200*time.Millisecond)
	defer cancel()
	_, err = c.SayHello(ctx, "you")
	ce := connectionError(t, err, codes.DeadlineExceeded, addr, "connection refused", "--addr")
	if ce.State != connectivity.TransientFailure || ce.Target != addr {
		t.Errorf("State %v, Target %q; want TRANSIENT_FAILURE, %q", ce.State, ce.Target, addr)
	}

	// With time for grpc's retries to give up, the call ends Unavailable,
	// explained the same way.
	_, err = c.SayHello(testContext(t), "you")
	connectionError(t, err, codes.Unavailable, addr, "connection refused", "--addr")
}

// A call that reached a slow server ran out on the server, not while
// connecting: the phase is not guessed from the error's words.
func TestPhaseFromChannelState(t *testing.T) {
	c := newClient(t, newServer(t, handlerFunc(untilEnd(nil))))
	ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
	defer cancel()
	_, err := c.SayHello(ctx, "you")
	de := deadlineError(t, err, codes.DeadlineExceeded)
	if de.Phase != greeter.PhaseServer || de.Connection != nil {
		t.Errorf("Phase %v, Connection %v; want on the server, no connection error", de.Phase, de.Connection)
	}
	var ce *greeter.ConnectionError
	if errors.As(err, &ce) {
		t.Errorf("errors.As found a ConnectionError in %v", err)
	}
}

func TestMissingPortRefused(t *testing.T) {
	for _, target := range []string{"127.0.0.1", "localhost", "dns:///localhost", "[::1]"} {
		_, err := greeter.NewClient(target, greeter.WithInsecure())
		if err == nil || !strings.Contains(err.Error(), ":443") || !strings.Contains(err.Error(), "add the server's port") {
			t.Errorf("NewClient(%q) = %v; want an error saying it has no port and grpc would dial 443", target, err)
		}
	}
	for _, target := range []string{"127.0.0.1:50051", "dns:///localhost:50051", "unix:/tmp/greeter.sock", "passthrough:///bufnet"} {
		c, err := greeter.NewClient(target, greeter.WithInsecure())
		if err != nil {
			t.Errorf("NewClient(%q) = %v; want a client", target, err)
			continue
		}
		c.Close()
	}
}

// The common mistakes each get a hint naming the option and the CLI flag
// that fix them. A TLS handshake that cannot succeed is not retried.
func TestConnectionHints(t *testing.T) {
	cert, roots := newCA(t)
	_, plainAddr := startTCPGreeter(t)
	_, tlsAddr := startTCPGreeter(t, greeter.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	_, otherRoots := newCA(t)
	h1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h1srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}
	go h1srv.Serve(h1)
	t.Cleanup(func() { h1srv.Close() })

	tests := []struct {
		name        string
		addr        string
		opts        []greeter.ClientOption
		want        []string
		oneAttempt  bool // retrying cannot fix it
		wantTimeout time.Duration
	}{
		{"TLS to a plaintext server", plainAddr, []greeter.ClientOption{greeter.WithTLS(&tls.Config{RootCAs: roots})},
			[]string{"first record does not look like a TLS handshake", "WithInsecure", "--tls"}, true, 0},
		{"untrusted certificate", tlsAddr, []greeter.ClientOption{greeter.WithTLS(&tls.Config{RootCAs: otherRoots})},
			[]string{"certificate", "RootCAs", "--tls-ca"}, true, 0},
		{"plaintext to a TLS server", tlsAddr, []greeter.ClientOption{greeter.WithInsecure()},
			[]string{"WithTLS", "--tls"}, false, 200 * time.Millisecond},
		{"HTTP/1 port", h1.Addr().String(), []greeter.ClientOption{greeter.WithInsecure()},
			[]string{"HTTP/1.1", "--addr"}, false, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts attemptCounter
			c, err := greeter.NewClient(tt.addr, append(tt.opts, greeter.WithDialOptions(grpc.WithStatsHandler(&attempts)))...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := testContext(t)
			code := codes.Unavailable
			if tt.wantTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.wantTimeout)
				defer cancel()
				code = codes.DeadlineExceeded
			}
			_, err = c.SayHello(ctx, "you")
			connectionError(t, err, code, tt.addr, tt.want...)
			if n := attempts.n.Load(); tt.oneAttempt && n != 1 {
				t.Errorf("grpc made %d attempts; want 1: retrying cannot fix this", n)
			}
		})
	}
}

// A server that serves the Greeter under the other name gets a hint naming
// the option and the flag.
func TestServiceNameHint(t *testing.T) {
	srv := newServer(t, greeter.WithServiceNames(greeter.HelloworldServiceName))
	_, err := newClient(t, srv).SayHello(testContext(t), "you")
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("SayHello = %v; want Unimplemented", err)
	}
	for _, want := range []string{"/Greeter/SayHello", `WithServiceName("helloworld.Greeter")`, "--service helloworld.Greeter"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}
