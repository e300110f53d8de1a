package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	channelzpb "google.golang.org/grpc/channelz/grpc_channelz_v1"
	"google.golang.org/grpc/credentials/insecure"
)

// lineBuffer hands each line written to it to a channel.
type lineBuffer struct {
	mu      sync.Mutex
	partial string
	lines   chan string
}

func newLineBuffer() *lineBuffer { return &lineBuffer{lines: make(chan string, 64)} }

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial += string(p)
	for {
		line, rest, ok := strings.Cut(b.partial, "\n")
		if !ok {
			return len(p), nil
		}
		b.partial = rest
		select {
		case b.lines <- line:
		default:
		}
	}
}

// observed is a running "greeter serve" with observability flags.
type observed struct {
	addr, metrics, admin string
	stderr               *syncBuffer
}

// startObserved runs "greeter serve" with args on 127.0.0.1:0, metrics and
// admin services on ports of their own, and stops it at the end of the test.
func startObserved(t *testing.T, args ...string) observed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := newLineBuffer(), newSyncBuffer()
	code := make(chan int, 1)
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, args...)
	go func() { code <- run(ctx, args, stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("serve exited %d: %s", c, stderr)
		}
	})
	var o observed
	timeout := time.After(defaultTestTimeout)
	for o.addr == "" || o.metrics == "" || o.admin == "" {
		select {
		case line := <-stdout.lines:
			last := line[strings.LastIndex(line, " ")+1:]
			switch {
			case strings.HasPrefix(line, "greeter: serving Greeter on "):
				o.addr = last
			case strings.HasPrefix(line, "greeter: metrics on "):
				o.metrics = last
			case strings.HasPrefix(line, "greeter: admin services"):
				o.admin = last
			}
		case c := <-code:
			code <- c
			t.Fatalf("serve exited with %d: %s", c, stderr)
		case <-timeout:
			t.Fatal("serve did not say where it listens")
		}
	}
	o.stderr = stderr
	return o
}

// scrape fetches and parses the exposition at url.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: not the Prometheus text format: %v", url, err)
	}
	return families
}

// samples returns the value of each sample of family name (a histogram's
// count) by the values of labels, joined with " ".
func samples(families map[string]*dto.MetricFamily, name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	f := families[name]
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		var vs []string
		for _, l := range labels {
			v := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == l {
					v = lp.GetValue()
				}
			}
			vs = append(vs, v)
		}
		key := strings.Join(vs, " ")
		switch {
		case m.GetHistogram() != nil:
			out[key] += float64(m.GetHistogram().GetSampleCount())
		case m.GetCounter() != nil:
			out[key] += m.GetCounter().GetValue()
		}
	}
	return out
}

// awaitMetrics scrapes url until check passes (a server records a call
// just after its status is sent) or the test's time is up, and returns
// check's last complaint.
func awaitMetrics(t *testing.T, url string, check func(map[string]*dto.MetricFamily) string) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		complaint := check(scrape(t, url))
		if complaint == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(complaint)
		}
		<-tick.C
	}
}

func equalCounts(what string, got, want map[string]float64) string {
	for k, v := range want {
		if got[k] != v {
			return fmt.Sprintf("%s{%s} = %v; want %v (all: %v)", what, k, got[k], v, got)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			return fmt.Sprintf("%s{%s} = %v; want none (all: %v)", what, k, v, got)
		}
	}
	return ""
}

// TestServeMetrics scrapes greeter serve --metrics-addr after calls and
// finds them counted by method and code, and the deadline expiries by the
// source of the budget that ran out.
func TestServeMetrics(t *testing.T) {
	// Slack for a loaded machine: each call dials a connection of its
	// own, and its request reaches the server 200ms before the budget
	// that decides its fate is gone; the calls that succeed have 400ms
	// more than the work.
	o := startObserved(t, "--delay", "600ms", "--min-budget", "250ms")
	for _, args := range [][]string{{}, {}, {}, {"--again"}, {"--again"}} {
		if code, _, errOut := runCmd(append([]string{"call", "--addr", o.addr}, args...)...); code != 0 {
			t.Fatalf("call %v: exit %d: %s", args, code, errOut)
		}
	}
	// The caller's budget runs out on the server; a budget below the
	// minimum is refused at once.
	for _, timeout := range []string{"450ms", "200ms"} {
		if code, _, errOut := runCmd("call", "--addr", o.addr, "--timeout", timeout); code != 1 || !strings.HasPrefix(errOut, "DeadlineExceeded") {
			t.Fatalf("call --timeout %s: exit %d, %s; want DeadlineExceeded", timeout, code, errOut)
		}
	}
	awaitMetrics(t, o.metrics, func(f map[string]*dto.MetricFamily) string {
		if c := equalCounts("grpc_server_call_duration_seconds", samples(f, "grpc_server_call_duration_seconds", "grpc_method", "grpc_status"), map[string]float64{
			"Greeter/SayHello OK":                3,
			"Greeter/SayHelloAgain OK":           2,
			"Greeter/SayHello DEADLINE_EXCEEDED": 2,
		}); c != "" {
			return c
		}
		return equalCounts("greeter_server_deadline_exceeded_total", samples(f, "greeter_server_deadline_exceeded_total", "grpc_method", "greeter_budget_source"), map[string]float64{
			"Greeter/SayHello client":     1,
			"Greeter/SayHello min_budget": 1,
		})
	})
}

// TestServeChannelz reads channelz from greeter serve --admin-addr over
// gRPC and finds the calls made counted on the Greeter's server.
func TestServeChannelz(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	o := startObserved(t)
	for range 3 {
		if code, _, errOut := runCmd("call", "--addr", o.addr); code != 0 {
			t.Fatalf("call: exit %d: %s", code, errOut)
		}
	}
	conn, err := grpc.NewClient(o.admin, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cz := channelzpb.NewChannelzClient(conn)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		// channelz knows every server of the process: find serve's by
		// its listening address.
		resp, err := cz.GetServers(ctx, &channelzpb.GetServersRequest{})
		if err != nil {
			t.Fatalf("GetServers: %v", err)
		}
		var found *channelzpb.Server
		for _, s := range resp.GetServer() {
			for _, ls := range s.GetListenSocket() {
				if ls.GetName() == o.addr {
					found = s
				}
			}
		}
		if found == nil {
			t.Fatalf("channelz has no server listening on %s", o.addr)
		}
		d := found.GetData()
		if d.GetCallsSucceeded() == 3 && d.GetCallsStarted() == 3 && d.GetCallsFailed() == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("channelz: calls started %d, succeeded %d, failed %d; want 3, 3, 0", d.GetCallsStarted(), d.GetCallsSucceeded(), d.GetCallsFailed())
		case <-tick.C:
		}
	}
}

// TestServeLogFlags checks --log-format json (a JSON object per line, the
// per-call line among them) and refuses unknown formats and levels, and an
// OTLP endpoint that is no URL.
func TestServeLogFlags(t *testing.T) {
	addr, stop, stderr := startServe(t, "--log-format", "json", "--request-id")
	if code, _, errOut := runCmd("call", "--addr", addr); code != 0 {
		t.Fatalf("call: exit %d: %s", code, errOut)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	finished := 0
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if m["msg"] == "finished call" {
			finished++
			if m["grpc.method"] != "SayHello" || m["grpc.code"] != "OK" || m["greeter.request_id"] == nil || m["greeter.budget.source"] != "client" {
				t.Errorf("finished call line = %v; want SayHello, OK, a request id, budget source client", m)
			}
		}
	}
	if finished != 1 {
		t.Errorf("%d finished call lines; want 1:\n%s", finished, stderr)
	}
	for _, args := range [][]string{{"--log-format", "xml"}, {"--log-level", "loud"}, {"--otlp-endpoint", "localhost:4317"}, {"--otlp-endpoint", "::bad"}} {
		if code, _, errOut := runCmd(append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...); code != 2 || !strings.Contains(errOut, args[0]) {
			t.Errorf("serve %v = exit %d, %q; want 2 and a message naming %s", args, code, errOut, args[0])
		}
	}
}

// prometheusBinary returns Debian's prometheus, or skips (fails under
// GREETER_REQUIRE_INTEROP=1, as CI runs) when it is not installed.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("prometheus")
	if err == nil {
		return p
	}
	msg := "no prometheus on PATH; install Debian's prometheus package"
	if os.Getenv("GREETER_REQUIRE_INTEROP") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (set GREETER_REQUIRE_INTEROP=1 to make this a failure)")
	return ""
}

// freePort returns a 127.0.0.1 address nothing listens on, for a program
// that takes a fixed one.
func freePort(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// TestServeScrapedByPrometheus has a real Prometheus server scrape greeter
// serve and finds the calls made through PromQL on its HTTP API.
func TestServeScrapedByPrometheus(t *testing.T) {
	bin := prometheusBinary(t)
	o := startObserved(t)
	for _, args := range [][]string{{}, {}, {"--again"}} {
		if code, _, errOut := runCmd(append([]string{"call", "--addr", o.addr}, args...)...); code != 0 {
			t.Fatalf("call %v: exit %d: %s", args, code, errOut)
		}
	}
	u, err := url.Parse(o.metrics)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: greeter\n    static_configs:\n      - targets: [%q]\n", u.Host)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	web := freePort(t)
	logs := newSyncBuffer()
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	query := `sum by (grpc_method) (grpc_server_call_duration_seconds_count{job="greeter",grpc_status="OK"})`
	deadline := time.Now().Add(30 * time.Second) // Prometheus starts, then scrapes every second
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		got, err := promQuery(web, query)
		if err == nil && got["Greeter/SayHello"] == "2" && got["Greeter/SayHelloAgain"] == "1" && len(got) == 2 {
			return
		}
		last = fmt.Sprintf("%v (error %v)", got, err)
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("PromQL %s = %s; want Greeter/SayHello 2, Greeter/SayHelloAgain 1\nprometheus:\n%s", query, last, logs.String())
		}
	}
}

// promQuery runs an instant PromQL query on Prometheus's HTTP API and
// returns each series' value by its grpc_method.
func promQuery(addr, query string) (map[string]string, error) {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", resp.Status, body)
	}
	out := map[string]string{}
	for _, s := range r.Data.Result {
		if len(s.Value) == 2 {
			out[s.Metric["grpc_method"]] = fmt.Sprint(s.Value[1])
		}
	}
	return out, nil
}

// TestServeObservabilityPortTaken checks that serve refuses an --admin-addr
// already in use with a message naming the flag, after stopping the
// metrics server it had started: its port is free again.
func TestServeObservabilityPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	metrics := freePort(t)
	code, _, errOut := runCmd("serve", "--addr", "127.0.0.1:0", "--metrics-addr", metrics, "--admin-addr", taken.Addr().String())
	if code != 1 || !strings.Contains(errOut, "--admin-addr") || strings.Contains(errOut, "panic") {
		t.Fatalf("serve with --admin-addr taken = exit %d, %q; want 1 and a message naming --admin-addr", code, errOut)
	}
	lis, err := net.Listen("tcp", metrics)
	if err != nil {
		t.Fatalf("--metrics-addr %s still in use after serve refused to start: %v", metrics, err)
	}
	lis.Close()
}

// TestServeLogLevelWarn checks that --log-level warn drops the line of a
// call that succeeds and keeps the one of a call whose deadline ran out on
// the server.
func TestServeLogLevelWarn(t *testing.T) {
	addr, stop, stderr := startServe(t, "--log-level", "warn", "--log-format", "json", "--delay", "300ms")
	if code, _, errOut := runCmd("call", "--addr", addr, "--timeout", "5s"); code != 0 {
		t.Fatalf("call: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCmd("call", "--addr", addr, "--timeout", "100ms"); code != 1 || !strings.HasPrefix(errOut, "DeadlineExceeded") {
		t.Fatalf("call --timeout 100ms: exit %d, %s; want DeadlineExceeded", code, errOut)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 1 || lines[0]["msg"] != "finished call" || lines[0]["level"] != "WARN" || lines[0]["grpc.code"] != "DeadlineExceeded" {
		t.Fatalf("log at --log-level warn = %v; want the DeadlineExceeded call's line only", lines)
	}
}

// TestMetricsServerStopsWithinItsContext checks that stopping the metrics
// server while a scrape hangs returns once the stop's context ends, with
// the scrape's connection closed rather than left running.
func TestMetricsServerStopsWithinItsContext(t *testing.T) {
	entered := make(chan struct{})
	addr, stop, err := serveHTTP("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // a scrape that never finishes on its own
	}))
	if err != nil {
		t.Fatal(err)
	}
	scraped := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			resp.Body.Close()
		}
		scraped <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stop = %v; want the context's DeadlineExceeded", err)
	}
	select {
	case err := <-scraped:
		if err == nil {
			t.Error("the hanging scrape got an answer; want its connection closed")
		}
	case <-time.After(defaultTestTimeout):
		t.Fatal("the hanging scrape's connection is still open after the stop")
	}
}
