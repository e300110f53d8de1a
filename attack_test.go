package greeter_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawConn is an HTTP/2 connection to a server on 127.0.0.1, written frame
// by frame, as an attacker's would be.
type rawConn struct {
	t        *testing.T
	conn     net.Conn
	fr       *http2.Framer
	settings map[http2.SettingID]uint32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, defaultTestTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(defaultTestTimeout))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	r := &rawConn{t: t, conn: conn, fr: http2.NewFramer(conn, conn), settings: map[http2.SettingID]uint32{}}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for { // the server's SETTINGS
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			_ = s.ForeachSetting(func(s http2.Setting) error { r.settings[s.ID] = s.Val; return nil })
			if err := r.fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
}

// headers opens stream id for /Greeter/SayHello with extra header fields,
// sending no message.
func (r *rawConn) headers(id uint32, extra ...hpack.HeaderField) {
	r.t.Helper()
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range append([]hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: "/Greeter/SayHello"}, {Name: ":authority", Value: "greeter"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	}, extra...) {
		_ = enc.WriteField(f)
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: buf.Bytes(), EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
}

// end reads frames until stream id ends, and returns its grpc-status ("" if
// it was reset instead).
func (r *rawConn) end(id uint32) string {
	r.t.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("stream %d never ended: %v", id, err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == id && f.StreamEnded() {
				return f.PseudoValue("status") + " grpc-status=" + headerValue(f, "grpc-status")
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "reset " + f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			return "goaway " + f.ErrCode.String()
		}
	}
}

func headerValue(f *http2.MetaHeadersFrame, name string) string {
	for _, h := range f.Fields {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// The server advertises its bounds: the calls one connection may hold and
// the largest header list.
func TestServerAdvertisesBounds(t *testing.T) {
	_, addr := startTCPGreeter(t)
	r := dialRaw(t, addr)
	if got := r.settings[http2.SettingMaxConcurrentStreams]; got != greeter.DefaultMaxConcurrentStreams {
		t.Errorf("MAX_CONCURRENT_STREAMS = %d; want %d", got, greeter.DefaultMaxConcurrentStreams)
	}
	if got := r.settings[http2.SettingMaxHeaderListSize]; got != greeter.DefaultMaxHeaderListSize {
		t.Errorf("MAX_HEADER_LIST_SIZE = %d; want %d", got, greeter.DefaultMaxHeaderListSize)
	}
}

// A stream that opens and never sends its request is ended by the
// server's default budget, as any call is.
func TestHeaderOnlyStreamEndedByServerDefault(t *testing.T) {
	const budget = 200 * time.Millisecond
	_, addr := startTCPGreeter(t, greeter.WithServerDeadlines(greeter.DeadlinePolicy{Default: budget}))
	r := dialRaw(t, addr)
	start := time.Now()
	r.headers(1)
	got := r.end(1)
	if d := time.Since(start); d < budget || d > budget+greeter.DefaultOverrunGrace+timeSlack {
		t.Errorf("the header-only stream ended after %v; want its %v budget, plus the grace", d, budget)
	}
	if !strings.Contains(got, "grpc-status=4") && !strings.HasPrefix(got, "reset") {
		t.Errorf("the header-only stream ended with %q; want DeadlineExceeded (grpc-status 4) or a reset", got)
	}
}

// A header list past the limit, made of one large header repeated (each
// copy one byte on the wire thanks to HPACK's table), is refused, and the
// server goes on serving a good client.
func TestHeaderAmplificationRefused(t *testing.T) {
	_, addr := startTCPGreeter(t)
	r := dialRaw(t, addr)
	big := hpack.HeaderField{Name: "x-big-bin", Value: strings.Repeat("A", 2000)}
	extra := make([]hpack.HeaderField, 100) // 200KB decoded, about 2KB on the wire
	for i := range extra {
		extra[i] = big
	}
	r.headers(1, extra...)
	if got := r.end(1); strings.Contains(got, "grpc-status=0") {
		t.Errorf("a 200KB header list was served: %q", got)
	}
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := c.SayHello(testContext(t), "you"); err != nil || got != "Hello, you!" {
		t.Errorf("a good client after the attack: %q, %v", got, err)
	}
}

// A bidi stream whose client stopped reading leaves the handler blocked
// sending, on flow control; the server's cap ends the handler anyway,
// before it counts as an overrun, and frees it.
func TestStalledStreamEndedByServerCap(t *testing.T) {
	ctx := testContext(t)
	logs := newLogRecorder()
	srv, addr := startTCPGreeter(t, greeter.WithLogger(logs.logger()), greeter.WithServerDeadlines(greeter.DeadlinePolicy{Max: 300 * time.Millisecond}))
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sctx, cancel := context.WithCancel(ctx)
	stream, err := c.SayHelloBidiStream(sctx)
	if err != nil {
		t.Fatal(err)
	}
	// Send, never Recv: the replies fill the client's window and the
	// handler's Send blocks; then the server stops reading, and this
	// client's Send blocks too, until the client gives up.
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		name := strings.Repeat("n", greeter.MaxNameLength)
		for range 10000 {
			if err := stream.Send(&greeterpb.HelloRequest{Name: name}); err != nil {
				return
			}
		}
	}()
	r := logs.await(ctx, t, "deadline exceeded") // the handler returned
	if got := logAttr(r, "budget_from"); got != "server cap" {
		t.Errorf("budget_from = %q; want server cap", got)
	}
	if n := srv.Overruns(); n != 0 {
		t.Errorf("Overruns() = %d; want the blocked handler ended within the grace", n)
	}
	cancel()
	<-sending
}

// drain reads and drops every frame the server sends on r, so that the
// server is never held up writing to it, until the connection ends.
func (r *rawConn) drain() {
	go func() {
		for {
			if _, err := r.fr.ReadFrame(); err != nil {
				return
			}
		}
	}()
}

// heldMem is the memory the process's Go code holds, heap and stacks:
// RSS less what the runtime has not given back and, under the race
// detector, its shadow memory, which would swamp the server's own.
func heldMem() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

// The attacks found against a default server, on the wire at once:
// header amplification on 20 connections, 5,000 header-only streams on
// one, and a rapid-reset flood, while a good client calls. The server
// stays within 64MB more memory and a bounded number of goroutines, and
// the good client loses no call. (With grpc's own limits, no stream limit
// and a 16MiB header list, the same attacks took +262MB of RSS and +6,600
// goroutines.)
func TestAttacksBounded(t *testing.T) {
	ctx := testContext(t)
	_, addr := startTCPGreeter(t, greeter.WithServerDeadlines(greeter.DeadlinePolicy{Default: 2 * time.Second, Max: 5 * time.Second}))
	good, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := good.SayHello(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	baseMem, baseG := heldMem(), runtime.NumGoroutine()

	// The good client, calling throughout.
	stop := make(chan struct{})
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	goodDone := make(chan struct{})
	go func() {
		defer close(goodDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := good.SayHello(cctx, "good")
			cancel()
			calls.Add(1)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}
	}()
	// What the server holds, sampled while the attacks run.
	var maxMem, maxG atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			maxMem.Store(max(maxMem.Load(), heldMem()))
			maxG.Store(max(maxG.Load(), int64(runtime.NumGoroutine())))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	// Header amplification: one 2KB header repeated, a byte a copy.
	big := hpack.HeaderField{Name: "x-big-bin", Value: strings.Repeat("A", 2000)}
	amp := make([]hpack.HeaderField, 4100)
	for i := range amp {
		amp[i] = big
	}
	for range 20 {
		r := dialRaw(t, addr)
		r.drain()
		r.headers(1, amp...)
	}
	// 5,000 header-only streams on one connection.
	flood := dialRaw(t, addr)
	flood.drain()
	for i := range uint32(5000) {
		flood.headers(2*i + 1)
	}
	// Rapid reset: a stream opened and cancelled, 10,000 times.
	reset := dialRaw(t, addr)
	reset.drain()
	for i := range uint32(10000) {
		reset.headers(2*i + 1)
		if err := reset.fr.WriteRSTStream(2*i+1, http2.ErrCodeCancel); err != nil {
			break // the server closed the connection: defended
		}
	}
	close(stop)
	<-goodDone
	<-sampled

	if n, f := calls.Load(), failed.Load(); f != 0 {
		t.Errorf("the good client lost %d of %d calls during the attacks; first: %v", f, n, firstErr.Load())
	}
	if grew := maxMem.Load() - baseMem; grew > 64<<20 {
		t.Errorf("memory in use grew by %d MB under attack; want at most 64 MB", grew>>20)
	}
	if g := maxG.Load() - int64(baseG); g > 2000 {
		t.Errorf("goroutines grew by %d under attack; want a bounded number", g)
	}
	t.Logf("good calls %d; heap and stacks +%d MB; goroutines +%d", calls.Load(), (maxMem.Load()-baseMem)>>20, maxG.Load()-int64(baseG))
}
