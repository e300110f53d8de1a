package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/grpc-greeter/greeter"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// defaultBenchDuration is how long greeter bench runs when neither --total
// nor --duration is given.
const defaultBenchDuration = 10 * time.Second

// benchConfig is greeter bench's flags.
type benchConfig struct {
	addr        string
	service     string
	name        string
	concurrency int
	connections int
	total       int64
	duration    time.Duration
	rps         float64
	timeout     time.Duration
	maxErrors   int64
	json        bool
	lb          string
}

// benchNotes is the end of greeter bench --help.
const benchNotes = `
QPS and latency are those of the successful (OK) calls. The report lists the
calls by status code, with a sample message for each code of the failed ones.

Exit codes:
  0  the run passed: some calls succeeded, at most --max-errors failed
  1  no call succeeded, or more than --max-errors calls failed (why on stderr)
  2  bad flags
`

// runBench loads a Greeter server with calls and reports what they measured
// (see benchNotes), on stdout; its verdict, when the run failed, on stderr.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", "[flags]", stderr)
	addUsageNotes(fs, benchNotes)
	var cfg benchConfig
	fs.StringVar(&cfg.addr, "addr", "localhost:50051", addrUsage)
	fs.StringVar(&cfg.service, "service", greeter.ServiceName, "service name to call: Greeter or helloworld.Greeter")
	fs.StringVar(&cfg.name, "name", "world", "name to greet in every call")
	fs.IntVar(&cfg.concurrency, "concurrency", 50, "number of callers making calls at the same time")
	fs.IntVar(&cfg.connections, "connections", 1, "number of connections the callers share, round robin")
	fs.Int64Var(&cfg.total, "total", 0, "stop after this many calls (instead of --duration)")
	fs.DurationVar(&cfg.duration, "duration", 0, "stop starting calls after this long (default 10s unless --total is given)")
	fs.Float64Var(&cfg.rps, "rps", 0, "start this many calls per second in all, on a fixed schedule whatever the replies (latency counts from each call's scheduled time); 0 for no limit")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "deadline of each call")
	fs.Int64Var(&cfg.maxErrors, "max-errors", 0, "exit 1 when more than `N` calls fail (0: when any fails); a run in which no call succeeds always exits 1")
	fs.BoolVar(&cfg.json, "json", false, "print the results as JSON")
	fs.StringVar(&cfg.lb, "lb", "", lbUsage)
	tlsFlags := addClientTLSFlags(fs)
	token := fs.String("token", "", "send this bearer `token` with every call; needs TLS")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if err := cfg.validate(fs); err != nil {
		fmt.Fprintf(stderr, "greeter bench: %v\n", err)
		return 2
	}
	transport, err := tlsFlags.option()
	if err != nil {
		fmt.Fprintf(stderr, "greeter bench: %v\n", err)
		return 2
	}
	copts := append(lbOptions(cfg.lb), transport, greeter.WithServiceName(cfg.service), greeter.WithServiceConfig(""))
	if *token != "" {
		if !tlsFlags.secure() {
			fmt.Fprintln(stderr, "greeter bench: --token needs TLS (--tls, --tls-ca or --tls-cert): a bearer token is never sent in plaintext")
			return 2
		}
		copts = append(copts, greeter.WithBearerToken(*token))
	}

	clients := make([]*greeter.Client, cfg.connections)
	for i := range clients {
		// No retry policy: each call is one attempt, so that errors and
		// latencies are the server's, not grpc's backoff, as in ghz.
		c, err := greeter.NewClient(cfg.addr, copts...)
		if err != nil {
			fmt.Fprintf(stderr, "greeter bench: %v\n", err)
			return 2
		}
		defer c.Close()
		clients[i] = c
	}
	connect(ctx, clients, cfg.timeout)

	bar := newBar(cfg, stderr)
	res := bench(ctx, cfg, clients, bar)
	bar.finish()

	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res.report(cfg.maxErrors)); err != nil {
			fmt.Fprintf(stderr, "greeter bench: %v\n", err)
			return 1
		}
	} else {
		res.print(stdout)
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "greeter bench: interrupted after %.2fs: the results are of the calls that ended before\n", res.elapsed.Seconds())
	}
	if verdict, failed := res.verdict(cfg.maxErrors); failed {
		// The target is down, broken or overloaded, or it is not the
		// service asked for: a script running the benchmark must notice.
		fmt.Fprintf(stderr, "greeter bench: %s\n", verdict)
		return 1
	}
	return 0
}

// verdict says whether a run failed: no call ended, none succeeded, or more
// than maxErrors failed. A failed run's verdict says why.
func (r benchResult) verdict(maxErrors int64) (string, bool) {
	ok := r.errors[codes.OK]
	failed := r.count - ok
	switch {
	case r.count == 0:
		return "FAIL: no call ended", true
	case ok == 0:
		return fmt.Sprintf("FAIL: no call succeeded: all %d failed (%s)", r.count, r.errorSummary()), true
	case failed > maxErrors:
		return fmt.Sprintf("FAIL: %d of %d calls failed (%s), more than --max-errors %d", failed, r.count, r.errorSummary(), maxErrors), true
	}
	return "", false
}

// errorSummary is the failed calls' counts by code, most first:
// "Unavailable 12, DeadlineExceeded 3".
func (r benchResult) errorSummary() string {
	var parts []string
	for _, c := range r.failedCodes() {
		parts = append(parts, fmt.Sprintf("%v %d", c, r.errors[c]))
	}
	return strings.Join(parts, ", ")
}

// failedCodes returns the codes of the failed calls, the most frequent
// first.
func (r benchResult) failedCodes() []codes.Code {
	var cs []codes.Code
	for c := range r.errors {
		if c != codes.OK {
			cs = append(cs, c)
		}
	}
	sort.Slice(cs, func(i, j int) bool {
		if r.errors[cs[i]] != r.errors[cs[j]] {
			return r.errors[cs[i]] > r.errors[cs[j]]
		}
		return cs[i] < cs[j]
	})
	return cs
}

func (c *benchConfig) validate(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case c.concurrency < 1:
		return fmt.Errorf("--concurrency %d: must be at least 1", c.concurrency)
	case c.connections < 1:
		return fmt.Errorf("--connections %d: must be at least 1", c.connections)
	case set["total"] && set["duration"]:
		return fmt.Errorf("--total and --duration both given: choose one")
	case set["total"] && c.total < 1:
		return fmt.Errorf("--total %d: must be at least 1", c.total)
	case set["duration"] && c.duration <= 0:
		return fmt.Errorf("--duration %v: must be positive", c.duration)
	case c.rps < 0 || math.IsNaN(c.rps) || math.IsInf(c.rps, 0):
		return fmt.Errorf("--rps %v: must be 0 (no limit) or positive", c.rps)
	case c.timeout <= 0:
		return fmt.Errorf("--timeout %v: must be positive", c.timeout)
	}
	if !set["total"] && !set["duration"] {
		c.duration = defaultBenchDuration
	}
	return nil
}

// connect starts every connection and waits, at most timeout, for them to
// be ready, so that connection setup is not counted as call latency. A
// connection that is not ready in time is left to fail (or succeed) on its
// calls, where the errors are counted.
func connect(ctx context.Context, clients []*greeter.Client, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { waitReady(ctx, c.Conn()) })
	}
	wg.Wait()
}

// shard is one part of the results, shared by a few callers so that
// recording a call rarely waits on a lock.
type shard struct {
	mu      sync.Mutex
	hist    *hdrhistogram.Histogram // latency of the OK calls, in microseconds
	errors  map[codes.Code]int64
	samples map[codes.Code]string // the first error message of each code
}

// record counts the end of one call that took d.
func (sh *shard) record(d time.Duration, err error) {
	code := status.Code(err)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.errors[code]++
	if code == codes.OK {
		sh.hist.RecordValue(min(max(d.Microseconds(), 1), maxLatencyMicros))
	} else if _, ok := sh.samples[code]; !ok {
		sh.samples[code] = errorText(err)
	}
}

// maxLatencyMicros is the highest latency the histograms track; longer calls
// are recorded as this.
const maxLatencyMicros = int64(time.Hour / time.Microsecond)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, maxLatencyMicros, 3)
}

// benchResult is what a run measured.
type benchResult struct {
	target  float64 // --rps; 0 for no limit
	count   int64
	elapsed time.Duration
	hist    *hdrhistogram.Histogram // latency of the OK calls
	errors  map[codes.Code]int64    // including OK
	samples map[codes.Code]string   // one error message for each failed code
}

// bench runs the load: cfg.concurrency callers share the clients round
// robin, each making one call at a time, until cfg.total calls have been
// started or cfg.duration has passed (calls in flight then run to their
// end), or ctx is done. bar, if any, is told of the progress.
func bench(ctx context.Context, cfg benchConfig, clients []*greeter.Client, bar *bar) benchResult {
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.duration > 0 {
		stop, cancel = context.WithTimeout(stop, cfg.duration)
		defer cancel()
	}
	// With --rps, call k is due at start + k/rps (open loop): a call that
	// finds its slot passed, its caller busy with a slow reply, counts
	// its latency from the slot, so that a server too slow for the rate
	// shows in the latencies instead of quietly lowering the rate (no
	// coordinated omission).
	var slots atomic.Int64
	var interval time.Duration
	if cfg.rps > 0 {
		interval = time.Duration(float64(time.Second) / cfg.rps)
	}
	shards := make([]*shard, min(cfg.concurrency, 4*runtime.GOMAXPROCS(0)))
	for i := range shards {
		shards[i] = &shard{hist: newHistogram(), errors: map[codes.Code]int64{}, samples: map[codes.Code]string{}}
	}

	var started, done atomic.Int64
	start := time.Now()
	progress := bar.track(cfg, start, &done)
	var wg sync.WaitGroup
	for i := range cfg.concurrency {
		c, sh := clients[i%len(clients)], shards[i%len(shards)]
		wg.Go(func() {
			for stop.Err() == nil {
				if cfg.total > 0 && started.Add(1) > cfg.total {
					return
				}
				t := time.Now()
				if interval > 0 {
					var ok bool
					if t, ok = waitUntil(stop, start.Add(time.Duration(slots.Add(1)-1)*interval)); !ok {
						return // stopped, or the slot is past the end
					}
				}
				cctx, ccancel := context.WithTimeout(ctx, cfg.timeout)
				_, err := c.SayHello(cctx, cfg.name)
				d := time.Since(t)
				ccancel()
				if err != nil && ctx.Err() != nil {
					return // cut short by an interrupt: not the server's doing
				}
				sh.record(d, err)
				done.Add(1)
			}
		})
	}
	wg.Wait()
	res := benchResult{target: cfg.rps, elapsed: time.Since(start), count: done.Load(), hist: newHistogram(),
		errors: map[codes.Code]int64{}, samples: map[codes.Code]string{}}
	progress()
	for _, sh := range shards {
		res.hist.Merge(sh.hist)
		for code, n := range sh.errors {
			res.errors[code] += n
		}
		for code, msg := range sh.samples {
			if _, ok := res.samples[code]; !ok {
				res.samples[code] = msg
			}
		}
	}
	return res
}

// waitUntil waits for a call's slot t and returns the time its latency
// counts from: t itself when the slot had passed (the caller was busy: the
// wait is part of the latency the server caused), the moment of waking
// otherwise (the timer's own lateness is the tool's, not the server's). It
// reports false when stop ended first.
func waitUntil(stop context.Context, t time.Time) (time.Time, bool) {
	if dl, ok := stop.Deadline(); ok && !t.Before(dl) {
		return t, false
	}
	d := time.Until(t)
	if d <= 0 {
		return t, stop.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return time.Now(), true
	case <-stop.Done():
		return t, false
	}
}

// qps is the successful calls per second of the run: failed calls, which
// a broken server can make very fast, do not count.
func (r benchResult) qps() float64 {
	return r.rate(r.errors[codes.OK])
}

// callsPerSecond is the calls ended per second of the run, failed or not.
func (r benchResult) callsPerSecond() float64 {
	return r.rate(r.count)
}

func (r benchResult) rate(n int64) float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(n) / r.elapsed.Seconds()
}

// jsonReport is the --json output. Latencies are in milliseconds, of the
// OK calls only; latency_ms is left out when no call succeeded.
type jsonReport struct {
	Count        int64             `json:"count"`
	OK           int64             `json:"ok"`
	DurationS    float64           `json:"duration_s"`
	QPS          float64           `json:"qps"`         // OK calls per second
	CallsPerS    float64           `json:"calls_per_s"` // calls per second, failed or not
	TargetQPS    float64           `json:"target_qps,omitempty"`
	LatencyMs    *jsonLatency      `json:"latency_ms,omitempty"`
	Histogram    []jsonBucket      `json:"histogram"`
	Errors       map[string]int64  `json:"errors"`        // failed calls by code
	ErrorSamples map[string]string `json:"error_samples"` // one message for each code of errors
	StatusCode   map[string]int64  `json:"status_codes"`
	// Failure says why the run failed (and greeter bench exited 1); it
	// is left out when the run passed.
	Failure string `json:"failure,omitempty"`
}

type jsonLatency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// jsonBucket counts the calls whose latency was at most LeMs and more than
// the previous bucket's.
type jsonBucket struct {
	LeMs  float64 `json:"le_ms"`
	Count int64   `json:"count"`
}

func micros(v int64) float64 { return float64(v) / 1e3 }

func (r benchResult) report(maxErrors int64) jsonReport {
	rep := jsonReport{
		Count:        r.count,
		OK:           r.errors[codes.OK],
		DurationS:    r.elapsed.Seconds(),
		QPS:          r.qps(),
		CallsPerS:    r.callsPerSecond(),
		TargetQPS:    r.target,
		Errors:       map[string]int64{},
		ErrorSamples: map[string]string{},
		StatusCode:   map[string]int64{},
		Histogram:    []jsonBucket{},
	}
	rep.Failure, _ = r.verdict(maxErrors)
	if r.hist.TotalCount() > 0 {
		rep.LatencyMs = &jsonLatency{
			Min:  micros(r.hist.Min()),
			Mean: r.hist.Mean() / 1e3,
			P50:  micros(r.hist.ValueAtPercentile(50)),
			P90:  micros(r.hist.ValueAtPercentile(90)),
			P99:  micros(r.hist.ValueAtPercentile(99)),
			Max:  micros(r.hist.Max()),
		}
	}
	for _, b := range r.buckets() {
		rep.Histogram = append(rep.Histogram, jsonBucket{LeMs: micros(b.le), Count: b.count})
	}
	for code, n := range r.errors {
		rep.StatusCode[code.String()] = n
		if code != codes.OK {
			rep.Errors[code.String()] = n
			rep.ErrorSamples[code.String()] = r.samples[code]
		}
	}
	return rep
}

type bucket struct {
	le, count int64 // microseconds, calls
}

// histogramBuckets is how many bars the latency histogram has.
const histogramBuckets = 10

// buckets splits the latencies into histogramBuckets bars whose bounds grow
// geometrically from the fastest call to the slowest, so that both the body
// and the tail of the distribution show.
func (r benchResult) buckets() []bucket {
	if r.hist.TotalCount() == 0 {
		return nil
	}
	lo, hi := float64(r.hist.Min()), float64(r.hist.Max())
	if hi <= lo {
		return []bucket{{le: r.hist.Max(), count: r.hist.TotalCount()}}
	}
	bs := make([]bucket, histogramBuckets)
	for i := range bs {
		bs[i].le = int64(math.Ceil(lo * math.Pow(hi/lo, float64(i+1)/histogramBuckets)))
	}
	bs[len(bs)-1].le = r.hist.Max()
	for _, bar := range r.hist.Distribution() {
		if bar.Count == 0 {
			continue
		}
		// A bar covers values From..To that the histogram holds as equal;
		// it goes where its lowest value falls.
		i := sort.Search(len(bs), func(i int) bool { return bs[i].le >= bar.From })
		bs[min(i, len(bs)-1)].count += bar.Count
	}
	return bs
}

// print writes the report for a person: a summary, then the latency of the
// OK calls (none when no call succeeded), then the calls by status code
// with a sample message for each failed code.
func (r benchResult) print(w io.Writer) {
	r.printSummary(w)
	if r.hist.TotalCount() > 0 {
		r.printLatency(w)
	}
	r.printCodes(w)
}

func (r benchResult) printSummary(w io.Writer) {
	ok := r.errors[codes.OK]
	fmt.Fprintf(w, "Summary:\n")
	fmt.Fprintf(w, "  Calls:     %d (%d OK, %d failed)\n", r.count, ok, r.count-ok)
	fmt.Fprintf(w, "  Duration:  %.2fs\n", r.elapsed.Seconds())
	if ok == 0 {
		fmt.Fprintf(w, "  QPS:       none: no call succeeded, so no QPS or latency to report\n")
		return
	}
	var notes []string
	if ok < r.count {
		notes = append(notes, fmt.Sprintf("%.1f calls/s with the failed ones", r.callsPerSecond()))
	}
	if r.target > 0 {
		notes = append(notes, fmt.Sprintf("target %g", r.target))
	}
	fmt.Fprintf(w, "  QPS:       %.1f OK calls/s", r.qps())
	if len(notes) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(notes, "; "))
	}
	fmt.Fprintln(w)
}

func (r benchResult) printLatency(w io.Writer) {
	d := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	if r.errors[codes.OK] < r.count {
		fmt.Fprintf(w, "\nLatency of the OK calls:\n")
	} else {
		fmt.Fprintf(w, "\nLatency:\n")
	}
	fmt.Fprintf(w, "  p50  %v\n  p90  %v\n  p99  %v\n  max  %v\n",
		d(r.hist.ValueAtPercentile(50)), d(r.hist.ValueAtPercentile(90)),
		d(r.hist.ValueAtPercentile(99)), d(r.hist.Max()))

	fmt.Fprintf(w, "\nHistogram:\n")
	bs := r.buckets()
	var most int64
	for _, b := range bs {
		most = max(most, b.count)
	}
	for _, b := range bs {
		n := int(math.Round(40 * float64(b.count) / float64(most)))
		if n == 0 && b.count > 0 {
			n = 1
		}
		fmt.Fprintf(w, "  ≤ %-10v %8d %s\n", d(b.le), b.count, strings.Repeat("■", n))
	}
}

func (r benchResult) printCodes(w io.Writer) {
	if r.count == 0 {
		return
	}
	fmt.Fprintf(w, "\nStatus codes:\n")
	var cs []codes.Code
	for c := range r.errors {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i] < cs[j] })
	for _, c := range cs {
		if c == codes.OK {
			fmt.Fprintf(w, "  %-18s %d\n", c, r.errors[c])
			continue
		}
		// One line per code, whatever the message holds.
		msg := strings.Join(strings.Fields(r.samples[c]), " ")
		fmt.Fprintf(w, "  %-18s %d  e.g. %s\n", c, r.errors[c], msg)
	}
}

// bar is a progress bar on a terminal; nil, and every method a no-op, when
// stderr is not one (piped, redirected, or a test's buffer).
type bar struct {
	pb *progressbar.ProgressBar
}

func newBar(cfg benchConfig, stderr io.Writer) *bar {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	limit, desc, opts := cfg.total, "calls", []progressbar.Option{progressbar.OptionShowCount()}
	if cfg.total == 0 {
		limit, desc, opts = cfg.duration.Milliseconds(), "time", nil
	}
	return &bar{pb: progressbar.NewOptions64(limit, append(opts,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(40),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)...)}
}

// track updates the bar every 100ms from done (total mode) or the time since
// start (duration mode) until the returned func is called.
func (b *bar) track(cfg benchConfig, start time.Time, done *atomic.Int64) (stop func()) {
	if b == nil {
		return func() {}
	}
	quit, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if cfg.total > 0 {
					b.pb.Set64(done.Load())
				} else {
					b.pb.Set64(min(time.Since(start).Milliseconds(), cfg.duration.Milliseconds()))
				}
			}
		}
	}()
	return func() {
		close(quit)
		<-stopped
	}
}

func (b *bar) finish() {
	if b != nil {
		b.pb.Finish()
	}
}
