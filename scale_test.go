package greeter_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	v3orcaservicegrpc "github.com/cncf/xds/go/xds/service/orca/v3"
	v3orcaservicepb "github.com/cncf/xds/go/xds/service/orca/v3"
	"github.com/grpc-greeter/greeter"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// fleet starts n counted greeters on 127.0.0.1 and returns them with the
// greeter:/// target that lists them.
func fleet(t *testing.T, n int, opts ...greeter.ServerOption) ([]*counted, string) {
	t.Helper()
	var backends []*counted
	var addrs []string
	for range n {
		b := startCounted(t, opts...)
		backends = append(backends, b)
		addrs = append(addrs, b.addr)
	}
	return backends, "greeter:///" + strings.Join(addrs, ",")
}

// calls returns how many calls each backend has served.
func calls(backends []*counted) []int64 {
	n := make([]int64, len(backends))
	for i, b := range backends {
		n[i] = b.calls.Load()
	}
	return n
}

// untilEach calls c until every backend has served at least one call: the
// balancer has a connection to each.
func untilEach(ctx context.Context, t *testing.T, c *greeter.Client, backends []*counted) {
	t.Helper()
	for {
		all := true
		for _, n := range calls(backends) {
			all = all && n > 0
		}
		if all {
			return
		}
		if _, err := c.SayHello(ctx, "warm"); err != nil {
			t.Fatalf("warm-up call: %v", err)
		}
	}
}

// spread makes n sequential calls and returns how many each backend
// served.
func spread(ctx context.Context, t *testing.T, c *greeter.Client, backends []*counted, n int) []int64 {
	t.Helper()
	before := calls(backends)
	for range n {
		if _, err := c.SayHello(ctx, "spread"); err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	after := calls(backends)
	for i := range after {
		after[i] -= before[i]
	}
	return after
}

// round_robin over the three servers of a greeter:/// list spreads 300
// calls evenly: it rotates over ready backends, so each gets its third
// give or take the calls made while a connection was (re)made.
func TestRoundRobinOverGreeterList(t *testing.T) {
	ctx := testContext(t)
	backends, target := fleet(t, 3)
	c, err := greeter.NewClient(target, greeter.WithInsecure(), greeter.WithLoadBalancing("round_robin"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	untilEach(ctx, t, c, backends)
	// Call by call: round_robin never sends two calls in a row to the
	// same backend while all three are ready; a policy picking at random
	// would, about one call in three.
	got := make([]int64, len(backends))
	last, repeats := -1, 0
	for range 300 {
		one := spread(ctx, t, c, backends, 1)
		for i, n := range one {
			if n == 1 {
				if i == last {
					repeats++
				}
				last = i
				got[i]++
			}
		}
	}
	for i, n := range got {
		if n < 90 || n > 110 {
			t.Errorf("round_robin: backend %d served %d of 300 calls (all: %v); want 100 ± 10", i, n, got)
		}
	}
	if repeats > 3 {
		t.Errorf("round_robin: %d of 300 calls went to the backend of the call before; want none (a few if a connection was remade)", repeats)
	}
}

// The default policy, pick_first, sends every call to one backend of the
// list.
func TestPickFirstOverGreeterList(t *testing.T) {
	ctx := testContext(t)
	backends, target := fleet(t, 3)
	c, err := greeter.NewClient(target, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := spread(ctx, t, c, backends, 30)
	if got[0] != 30 {
		t.Errorf("pick_first: calls per backend = %v; want all 30 on the first", got)
	}
}

// A watched file of addresses: rewriting it moves the client's calls to
// the new backend without a restart; a bad rewrite keeps the last good
// list.
func TestGreeterFileResolverFollowsUpdates(t *testing.T) {
	ctx := testContext(t)
	backends, _ := fleet(t, 2)
	a, b := backends[0], backends[1]
	dir := t.TempDir()
	file := filepath.Join(dir, "backends")
	write := func(content string) {
		t.Helper()
		tmp := filepath.Join(dir, "backends.new")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil { // atomically, as the docs say
			t.Fatal(err)
		}
	}
	write("# greeters\n" + a.addr + "\n")
	c, err := greeter.NewClient("greeter://file"+file, greeter.WithInsecure(),
		greeter.WithLoadBalancing("round_robin"), greeter.WithAddressFileInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := spread(ctx, t, c, backends, 10); got[0] != 10 {
		t.Fatalf("calls per backend with only a listed = %v; want all on a", got)
	}

	write(b.addr + "\n")
	onB := 0
	for onB < 10 { // until ten calls in a row reach b: the update arrived
		if got := spread(ctx, t, c, backends, 1); got[1] == 1 {
			onB++
		} else {
			onB = 0
		}
	}

	write("not an address\n")
	// The watcher reads the bad file within its interval and keeps b;
	// calls made over several intervals all reach b.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got := spread(ctx, t, c, backends, 1); got[1] != 1 {
			t.Fatalf("after a bad rewrite, a call went elsewhere than b (%v); want the last good list kept", got)
		}
	}
}

// Targets: every scheme a client can resolve is accepted; mistakes are
// refused by NewClient, saying what is wrong.
func TestClientTargets(t *testing.T) {
	ok := []string{
		"127.0.0.1:50051",
		"dns:///localhost:50051",
		"passthrough:///127.0.0.1:50051",
		"unix:/tmp/greeter.sock",
		"greeter:///127.0.0.1:5001,127.0.0.1:5002",
		"greeter:///[::1]:5001, localhost:5002",
		"greeter://file/etc/greeter/backends",
	}
	for _, target := range ok {
		c, err := greeter.NewClient(target, greeter.WithInsecure())
		if err != nil {
			t.Errorf("NewClient(%q) = %v; want it accepted", target, err)
			continue
		}
		c.Close()
	}
	bad := []struct{ target, want string }{
		{"greeter:///", "no address"},
		{"greeter:///127.0.0.1", `address "127.0.0.1": want HOST:PORT`},
		{"greeter:///127.0.0.1:5001,127.0.0.1:5001", "given twice"},
		{"greeter:///127.0.0.1:http", "want a number from 1 to 65535"},
		{"greeter://files/etc/x", `unknown authority "files"`},
		{"greeter://file", "no file named"},
		{"xds:///greeter", "build the client with github.com/grpc-greeter/greeter/xds"},
		{"consul:///greeter", `no name resolver for scheme "consul"`},
		{"dns:///localhost", "has no port"},
		{"ipv4:127.0.0.1:1,127.0.0.1:2", "grpc-go has no ipv4: scheme"},
	}
	for _, tt := range bad {
		c, err := greeter.NewClient(tt.target, greeter.WithInsecure())
		if err == nil {
			c.Close()
			t.Errorf("NewClient(%q) = nil error; want one saying %q", tt.target, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewClient(%q) = %v; want it to say %q", tt.target, err, tt.want)
		}
	}
	if _, err := greeter.NewClient("127.0.0.1:1", greeter.WithInsecure(), greeter.WithLoadBalancing("fastest")); err == nil || !strings.Contains(err.Error(), `WithLoadBalancing("fastest"): no such load-balancing policy`) {
		t.Errorf("WithLoadBalancing(fastest) = %v; want an error naming it", err)
	}
	if _, err := greeter.NewClient("127.0.0.1:1", greeter.WithInsecure(), greeter.WithAddressFileInterval(-time.Second)); err == nil {
		t.Error("WithAddressFileInterval(-1s) accepted; want an error")
	}
	if _, err := greeter.NewServer(greeter.WithLoadReports(-time.Second)); err == nil {
		t.Error("WithLoadReports(-1s) accepted; want an error")
	}
}

// loadReport decodes the ORCA report in a call's trailer.
func loadReport(t *testing.T, trailer metadata.MD) *v3orcapb.OrcaLoadReport {
	t.Helper()
	vals := trailer.Get("endpoint-load-metrics-bin")
	if len(vals) != 1 {
		t.Fatalf("trailer %v: want one endpoint-load-metrics-bin", trailer)
	}
	lr := new(v3orcapb.OrcaLoadReport)
	if err := proto.Unmarshal([]byte(vals[0]), lr); err != nil {
		t.Fatal(err)
	}
	return lr
}

// A server with WithLoadReports reports its load in every call's trailer
// and on the out-of-band stream: CPU utilization, greetings per second,
// greetings in flight, and the application's own utilization; the stream
// ends when the server stops instead of holding the stop up.
func TestLoadReports(t *testing.T) {
	ctx := testContext(t)
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	hold := greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if md, _ := grpc.Method(ctx); md == "/Greeter/SayHelloAgain" {
			held <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return h(ctx, req)
	})
	srv, addr := startTCPGreeter(t, greeter.WithLoadReports(50*time.Millisecond), hold)
	srv.LoadRecorder().SetApplicationUtilization(0.25)
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// A call held on the server while others run: they report it in
	// flight.
	heldDone := make(chan error, 1)
	go func() { _, err := c.SayHelloAgain(ctx, "held"); heldDone <- err }()
	<-held
	var lr *v3orcapb.OrcaLoadReport
	for lr == nil || lr.GetRpsFractional() == 0 { // until a sample has counted calls
		var trailer metadata.MD
		if _, err := c.SayHello(ctx, "load", grpc.Trailer(&trailer)); err != nil {
			t.Fatal(err)
		}
		lr = loadReport(t, trailer)
	}
	if got := lr.GetNamedMetrics()[greeter.InFlightMetric]; got != 1 {
		t.Errorf("per-call report: %s = %v; want 1 (the held call; this one has ended)", greeter.InFlightMetric, got)
	}
	if got := lr.GetApplicationUtilization(); got != 0.25 {
		t.Errorf("per-call report: application utilization = %v; want the 0.25 the application set", got)
	}
	if got := lr.GetCpuUtilization(); got <= 0 || got > 1.5 {
		t.Errorf("per-call report: CPU utilization = %v; want a measured share of GOMAXPROCS (0, 1.5]", got)
	}
	close(release)
	if err := <-heldDone; err != nil {
		t.Fatal(err)
	}

	// Out of band: the first report comes at once.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := v3orcaservicegrpc.NewOpenRcaServiceClient(conn).StreamCoreMetrics(ctx, &v3orcaservicepb.OrcaLoadReportRequest{ReportInterval: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	oob, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if oob.GetApplicationUtilization() != 0.25 || oob.GetRpsFractional() <= 0 {
		t.Errorf("out-of-band report = %v; want application utilization 0.25 and the greetings per second", oob)
	}
	if _, ok := oob.GetNamedMetrics()[greeter.InFlightMetric]; !ok {
		t.Errorf("out-of-band report = %v; want %s", oob, greeter.InFlightMetric)
	}

	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a load report stream open = %v", err)
	}
	if d := time.Since(start); d > timeSlack {
		t.Errorf("Shutdown took %v with a load report stream open; want the stream ended at once", d)
	}
	if _, err := stream.Recv(); err == nil {
		t.Error("the load report stream outlived the server")
	}
}

// Without WithLoadReports a server sends no report and has no recorder.
func TestLoadReportsOffByDefault(t *testing.T) {
	ctx := testContext(t)
	srv, addr := startTCPGreeter(t)
	if srv.LoadRecorder() != nil {
		t.Error("LoadRecorder() != nil without WithLoadReports")
	}
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var trailer metadata.MD
	if _, err := c.SayHello(ctx, "x", grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	if v := trailer.Get("endpoint-load-metrics-bin"); len(v) != 0 {
		t.Errorf("trailer has a load report without WithLoadReports")
	}
}

// weighted_round_robin, fed by the servers' ORCA reports, sends most
// calls to the backend that reports itself less loaded: with utilization
// 0.9 against 0.1, far fewer than round_robin's half.
func TestWeightedRoundRobinFollowsLoadReports(t *testing.T) {
	ctx := testContext(t)
	backends, target := fleet(t, 2, greeter.WithLoadReports(50*time.Millisecond))
	backends[0].srv.LoadRecorder().SetApplicationUtilization(0.9)
	backends[1].srv.LoadRecorder().SetApplicationUtilization(0.1)
	const wrr = `{"loadBalancingConfig": [{"weighted_round_robin": {"blackoutPeriod": "0s", "weightUpdatePeriod": "0.1s"}}]}`
	c, err := greeter.NewClient(target, greeter.WithInsecure(), greeter.WithServiceConfig(wrr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	untilEach(ctx, t, c, backends)
	// Weights need reports with a rate in them (a sample after calls) and
	// a weight update: a few periods of calls.
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
		if _, err := c.SayHello(ctx, "warm"); err != nil {
			t.Fatal(err)
		}
	}
	got := spread(ctx, t, c, backends, 300)
	t.Logf("weighted_round_robin: 300 calls split %v between utilization 0.9 and 0.1", got)
	if got[0] > 60 {
		t.Errorf("weighted_round_robin sent %d of 300 calls to the backend at 0.9 (%v); want at most 60 (round_robin: 150)", got[0], got)
	}
}

// greeter_least_request sends each call to the backend with the fewest in
// flight: while one backend holds a call, sequential calls all go to the
// others, where round_robin would send it every third. The busy backend
// holds only the first call named "first" and answers the others at once,
// so that a policy that sent it calls would show in the counts rather
// than hang.
func TestLeastRequestAvoidsBusyBackend(t *testing.T) {
	ctx := testContext(t)
	release := make(chan struct{})
	var heldCalls atomic.Int64
	holdFirst := greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if r, ok := req.(interface{ GetName() string }); ok && r.GetName() == "first" && heldCalls.Add(1) == 1 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return h(ctx, req)
	})
	busy := startCounted(t, holdFirst)
	idle, _ := fleet(t, 2)
	backends := []*counted{busy, idle[0], idle[1]}
	target := fmt.Sprintf("greeter:///%s,%s,%s", busy.addr, idle[0].addr, idle[1].addr)
	c, err := greeter.NewClient(target, greeter.WithInsecure(), greeter.WithLoadBalancing(greeter.LeastRequestBalancer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Every backend ready first: were the busy one alone ready when it
	// took its call, the next calls could go nowhere else.
	untilEach(ctx, t, c, backends)

	// Calls in the background until one is held on the busy backend.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(release)
	for heldCalls.Load() == 0 {
		wg.Add(1)
		done := make(chan struct{})
		go func() {
			defer wg.Done()
			defer close(done)
			if _, err := c.SayHello(ctx, "first"); err != nil {
				t.Errorf("call: %v", err)
			}
		}()
		for heldCalls.Load() == 0 {
			select {
			case <-done:
			case <-time.After(10 * time.Millisecond):
				continue
			}
			break
		}
	}
	got := spread(ctx, t, c, backends, 200)
	if got[0] != 0 {
		t.Errorf("%s sent %d of 200 calls to the backend holding one (%v); want none while the others are idle", greeter.LeastRequestBalancer, got[0], got)
	}
	if got[1] < 80 || got[2] < 80 {
		t.Errorf("%s split 200 calls %v; want the idle backends to share them, ties broken in turn", greeter.LeastRequestBalancer, got)
	}
}

// The policy's config must be empty: a setting it does not have is refused
// with grpc's service-config error at NewClient.
func TestLeastRequestConfig(t *testing.T) {
	_, err := greeter.NewClient("127.0.0.1:1", greeter.WithInsecure(),
		greeter.WithServiceConfig(`{"loadBalancingConfig": [{"greeter_least_request": {"choiceCount": 2}}]}`))
	if err == nil || !strings.Contains(err.Error(), `unknown setting "choiceCount"`) {
		t.Errorf("NewClient with a setting greeter_least_request lacks = %v; want an error naming it", err)
	}
}

// listenOn serves a greeter on addr, a port a test had before, until the
// test ends or stop is called.
func listenOn(t *testing.T, addr string, opts ...greeter.ServerOption) (stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	srv, err := greeter.NewServer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = srv.Shutdown(ctx)
			<-served
		})
	}
	t.Cleanup(stop)
	return stop
}

// One of three backends stopped mid-load, with the drain delay: its health
// turns NOT_SERVING first, client-side health checking moves the traffic
// off, it stops, and with greeter's retry policy no call fails; restarted
// on the same port, it gets traffic again.
func TestFleetFailover(t *testing.T) {
	ctx := testContext(t)
	const drain = 2 * time.Second
	backends, target := fleet(t, 3, greeter.WithDrainDelay(drain))
	sc, err := greeter.ServiceConfigWithHealthCheck("", greeter.ServiceName) // round_robin, retries
	if err != nil {
		t.Fatal(err)
	}
	c, err := greeter.NewClient(target, greeter.WithInsecure(), greeter.WithServiceConfig(sc))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	untilEach(ctx, t, c, backends)

	stop := make(chan struct{})
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 8 {
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
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
		if f := failed.Load(); f != 0 {
			t.Errorf("%d calls failed; first: %v", f, firstErr.Load())
		}
	}()
	waitCalls := func(b *counted, n int64, what string) {
		t.Helper()
		for start := b.calls.Load(); b.calls.Load() < start+n; {
			select {
			case <-ctx.Done():
				t.Fatalf("%s: the load did not reach the backend", what)
			case <-time.After(time.Millisecond):
			}
		}
	}
	for _, b := range backends {
		waitCalls(b, 50, "before the stop")
	}

	// Stop backend 1: during its drain delay traffic moves off it, before
	// it stops accepting.
	victim := backends[1]
	shut := make(chan error, 1)
	start := time.Now()
	go func() { shut <- victim.srv.Shutdown(ctx) }()
	for n := victim.calls.Load(); ; {
		waitCalls(backends[0], 50, "during the drain")
		m := victim.calls.Load()
		if m == n {
			break // 50 calls on backend 0, none on the victim
		}
		n = m
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) after %v, before traffic left the backend; the drain delay is %v", err, time.Since(start), drain)
	default:
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	waitCalls(backends[0], 200, "after the stop")
	waitCalls(backends[2], 200, "after the stop")

	// Restarted on its port: the client reconnects and sends it calls.
	restarted := &counted{addr: victim.addr}
	listenOn(t, victim.addr, greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		restarted.calls.Add(1)
		return h(ctx, req)
	}))
	waitCalls(restarted, 50, "after the restart")
}

// A call on a greeter:/// list with one server down fails no call: the
// balancer skips it.
func TestGreeterListWithOneDown(t *testing.T) {
	ctx := testContext(t)
	backends, _ := fleet(t, 2)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := lis.Addr().String()
	lis.Close() // nothing listens there now
	target := fmt.Sprintf("greeter:///%s,%s,%s", backends[0].addr, down, backends[1].addr)
	c, err := greeter.NewClient(target, greeter.WithInsecure(), greeter.WithLoadBalancing("round_robin"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 100 {
		if _, err := c.SayHello(ctx, "x"); err != nil {
			t.Fatalf("call %d with one backend down: %v (%v)", i, err, status.Code(err))
		}
	}
	if got := calls(backends); got[0] == 0 || got[1] == 0 {
		t.Errorf("calls per live backend = %v; want both used", got)
	}
}

// greeter_least_request under client-side health checking: a backend that
// says NOT_SERVING gets no call.
func TestLeastRequestWithHealthCheck(t *testing.T) {
	ctx := testContext(t)
	backends, target := fleet(t, 3)
	sc, err := greeter.ServiceConfigWithHealthCheck("", greeter.ServiceName)
	if err != nil {
		t.Fatal(err)
	}
	backends[0].srv.Health().SetServingStatus(greeter.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	c, err := greeter.NewClient(target, greeter.WithInsecure(), greeter.WithServiceConfig(sc), greeter.WithLoadBalancing(greeter.LeastRequestBalancer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	untilEach(ctx, t, c, backends[1:])
	if got := spread(ctx, t, c, backends, 100); got[0] != 0 {
		t.Errorf("calls per backend %v; want none on the NOT_SERVING one", got)
	}
}

// dns:/// and passthrough:/// targets reach a server like a bare
// host:port; dns:/// with round_robin spreads over every address the name
// has (here one).
func TestDNSAndPassthroughTargets(t *testing.T) {
	ctx := testContext(t)
	b := startCounted(t)
	for _, tt := range []struct {
		target string
		opts   []greeter.ClientOption
	}{
		{"dns:///" + b.addr, nil},
		{"dns:///" + b.addr, []greeter.ClientOption{greeter.WithLoadBalancing("round_robin")}},
		{"passthrough:///" + b.addr, nil},
	} {
		c, err := greeter.NewClient(tt.target, append(tt.opts, greeter.WithInsecure())...)
		if err != nil {
			t.Fatal(err)
		}
		before := b.calls.Load()
		if msg, err := c.SayHello(ctx, "dns"); err != nil || msg != "Hello, dns!" {
			t.Errorf("%s: SayHello = %q, %v", tt.target, msg, err)
		}
		if b.calls.Load() != before+1 {
			t.Errorf("%s: the call did not reach the server", tt.target)
		}
		c.Close()
	}
}

// A target refused for its scheme after the connection was built leaves
// nothing running: the watchers of WithTLSFiles stop with it.
func TestUnknownSchemeStopsFileWatchers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := newPKI(t)
	c, err := greeter.NewClient("consul:///greeter", greeter.WithTLSFiles(greeter.TLSFiles{CAFile: p.caFile, Refresh: testRefresh}))
	if err == nil {
		c.Close()
		t.Fatal("NewClient(consul:///greeter) accepted")
	}
}
