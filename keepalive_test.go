package greeter_test

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// blackholeProxy forwards TCP between its clients and backend on 127.0.0.1
// until swallow is called; from then on it reads and discards everything in
// both directions while keeping the connections open: to each side, the
// other has gone silent, like a peer whose host died or a network path that
// black-holes packets.
type blackholeProxy struct {
	lis      net.Listener
	backend  string
	swallowd atomic.Bool
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newBlackholeProxy(t *testing.T, backend string) *blackholeProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{lis: lis, backend: backend}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *blackholeProxy) addr() string { return p.lis.Addr().String() }
func (p *blackholeProxy) swallow()     { p.swallowd.Store(true) }

func (p *blackholeProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.backend)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *blackholeProxy) pipe(from, to net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !p.swallowd.Load() {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !p.swallowd.Load() {
				to.Close() // pass a close on, unless black-holing
			}
			return
		}
	}
}

func (p *blackholeProxy) close() {
	p.lis.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// openBidi opens a bidi stream and completes one exchange on it, so that
// the call is surely established end to end.
func openBidi(t *testing.T, ctx context.Context, c *greeter.Client) grpc.BidiStreamingClient[greeterpb.HelloRequest, greeterpb.HelloReply] {
	t.Helper()
	stream, err := c.SayHelloBidiStream(ctx)
	if err != nil {
		t.Fatalf("SayHelloBidiStream: %v", err)
	}
	if err := stream.Send(&greeterpb.HelloRequest{Name: "first"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return stream
}

func TestServerKeepaliveDetectsDeadClient(t *testing.T) {
	kp := keepalive.ServerParameters{Time: time.Second, Timeout: 500 * time.Millisecond} // grpc's minimum Time is 1s
	handlerDone := make(chan time.Time, 1)
	_, addr := startTCPGreeter(t, greeter.WithServerKeepalive(kp), greeter.WithStreamServerInterceptor(
		func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			err := h(srv, ss) // blocks in Recv while the client is silent
			handlerDone <- time.Now()
			return err
		}))
	proxy := newBlackholeProxy(t, addr)
	c, err := greeter.NewClient(proxy.addr(), greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	openBidi(t, ctx, c)

	proxy.swallow()
	start := time.Now()
	select {
	case end := <-handlerDone:
		if d := end.Sub(start); d > kp.Time+kp.Timeout+time.Second {
			t.Fatalf("server noticed the dead client after %v, want within Time+Timeout (%v) plus slack", d, kp.Time+kp.Timeout)
		}
	case <-ctx.Done():
		t.Fatal("server never noticed the client was gone")
	}
}

func TestClientKeepaliveDetectsDeadServer(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for grpc's minimum client keepalive time, 10s")
	}
	t.Parallel()
	// grpc-go raises a client keepalive Time below 10s to 10s and offers
	// no public way around it, so this test takes that long.
	kp := keepalive.ClientParameters{Time: 10 * time.Second, Timeout: time.Second}
	_, addr := startTCPGreeter(t)
	proxy := newBlackholeProxy(t, addr)
	c, err := greeter.NewClient(proxy.addr(), greeter.WithInsecure(), greeter.WithClientKeepalive(kp))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), kp.Time+kp.Timeout+defaultTestTimeout)
	defer cancel()
	stream := openBidi(t, ctx, c)

	proxy.swallow()
	start := time.Now()
	_, err = stream.Recv() // would hang until ctx ends without keepalive
	elapsed := time.Since(start)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Recv on a dead connection = %v, want Unavailable", err)
	}
	if bound := kp.Time + kp.Timeout + 2*time.Second; elapsed > bound {
		t.Fatalf("dead server detected after %v, want within %v", elapsed, bound)
	}
}

func TestTooManyPingsGetsGoAway(t *testing.T) {
	_, addr := startTCPGreeter(t) // DefaultKeepaliveEnforcement: pings at most every 5s
	ctx := testContext(t)

	// A well-behaved client with a call in flight throughout.
	good, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	stream := openBidi(t, ctx, good)

	// A misbehaving client, speaking raw HTTP/2: it pings in a tight loop.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeEnhanceYourCalm || string(ga.DebugData()) != "too_many_pings" {
				t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
			}
			break
		}
	}

	// The misbehaving client's connection is closed...
	for {
		if _, err := fr.ReadFrame(); err != nil {
			break
		}
	}
	// ...while the well-behaved client keeps being served, on its open
	// stream and with new calls.
	if err := stream.Send(&greeterpb.HelloRequest{Name: "polite"}); err != nil {
		t.Fatalf("Send after another client's GOAWAY: %v", err)
	}
	if r, err := stream.Recv(); err != nil || r.GetMessage() != "Hello, polite!" {
		t.Fatalf("Recv after another client's GOAWAY = %q, %v", r.GetMessage(), err)
	}
	if _, err := good.SayHello(ctx, "polite"); err != nil {
		t.Fatalf("SayHello after another client's GOAWAY: %v", err)
	}
}

func TestMaxConnectionIdleClosesIdleConnection(t *testing.T) {
	const idle = 300 * time.Millisecond
	srv := newServer(t, greeter.WithServerKeepalive(keepalive.ServerParameters{MaxConnectionIdle: idle}))
	c := newClient(t, srv)
	ctx := testContext(t)
	if _, err := c.SayHello(ctx, "once"); err != nil {
		t.Fatal(err)
	}
	lastCall := time.Now()
	// grpc hands the balancer's READY picker to calls a moment before it
	// publishes READY as the channel's state (balancer_wrapper.go's
	// UpdateState), so a call can succeed while the state still says
	// CONNECTING: await READY, from CONNECTING only.
	for s := c.Conn().GetState(); s != connectivity.Ready; s = c.Conn().GetState() {
		if s != connectivity.Connecting || !c.Conn().WaitForStateChange(ctx, s) {
			t.Fatalf("state after a call = %v, want READY", s)
		}
	}
	if !c.Conn().WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatal("the idle connection was never closed")
	}
	// grpc checks idleness every MaxConnectionIdle, so the close comes
	// between one and two periods after the last call.
	if d := time.Since(lastCall); d < idle-50*time.Millisecond || d > 2*idle+time.Second {
		t.Fatalf("idle connection closed after %v, want after about %v", d, idle)
	}
	if s := c.Conn().GetState(); s != connectivity.Idle {
		t.Fatalf("state after the server's GOAWAY = %v, want IDLE", s)
	}
	// The next call simply reconnects.
	if _, err := c.SayHello(ctx, "again"); err != nil {
		t.Fatalf("SayHello after idle close: %v", err)
	}
}
