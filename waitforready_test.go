package greeter_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greetertest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// downUntilUp is a dialer to srv that refuses connections, as a server that
// is not yet listening does, until up is set.
type downUntilUp struct {
	srv     *greetertest.Server
	up      atomic.Bool
	refused chan struct{} // receives once per refused dial
}

func (d *downUntilUp) dial(ctx context.Context, addr string) (net.Conn, error) {
	if !d.up.Load() {
		select {
		case d.refused <- struct{}{}:
		default:
		}
		return nil, errors.New("connection refused (test: server not up yet)")
	}
	return d.srv.Dial(ctx, addr)
}

func waitForReadyClient(t *testing.T, opts ...greeter.ClientOption) (*greeter.Client, *downUntilUp) {
	t.Helper()
	d := &downUntilUp{srv: newServer(t), refused: make(chan struct{}, 1)}
	c, err := greeter.NewClient("passthrough:///later", append([]greeter.ClientOption{greeter.WithInsecure(), greeter.WithDialOptions(
		grpc.WithContextDialer(d.dial),
		// Reconnect quickly once the server is up, instead of grpc's
		// default 1s-and-growing backoff.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 50 * time.Millisecond}}),
	)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, d
}

func TestWaitForReady(t *testing.T) {
	// No retry policy: without wait-for-ready the call would fail at
	// once, so only wait-for-ready can make it succeed.
	c, d := waitForReadyClient(t, greeter.WithServiceConfig(""))
	ctx := testContext(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.SayHello(ctx, "patient", grpc.WaitForReady(true))
		done <- err
	}()
	// The call is made while the server is down: the connection fails...
	<-d.refused
	for s := c.Conn().GetState(); s != connectivity.TransientFailure; s = c.Conn().GetState() {
		if !c.Conn().WaitForStateChange(ctx, s) {
			t.Fatal("connection never failed")
		}
	}
	// ...yet the call waits instead of failing.
	select {
	case err := <-done:
		t.Fatalf("wait-for-ready call returned %v while the server was down", err)
	default:
	}
	d.up.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("wait-for-ready call = %v, want success once the server is up", err)
	}
}

func TestFailFastWithoutWaitForReady(t *testing.T) {
	c, _ := waitForReadyClient(t)
	ctx := testContext(t)
	start := time.Now()
	_, err := c.SayHello(ctx, "impatient")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("SayHello with the server down = %v, want Unavailable", err)
	}
	// Fail fast: after DefaultServiceConfig's retries, well before the
	// 10s deadline.
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("failing took %v: not fast", elapsed)
	}
}
