// Package loadreport measures a server's load and reports it with ORCA
// (Open Request Cost Aggregation), through grpc-go's orca package: in the
// trailer of every call (per-call reports, which grpc's
// weighted_round_robin reads by default) and on the OpenRcaService's
// StreamCoreMetrics stream (out-of-band reports).
//
// Every interval it records the process's CPU utilization (CPU time used
// over the interval divided by the interval times GOMAXPROCS, which Go
// sets from the container's CPU limit), its memory utilization (memory
// the Go runtime holds over GOMEMLIMIT, only when a limit is set), the
// greetings served per second (rps_fractional), and the greetings in
// flight as the named metric [InFlightMetric]. Application utilization,
// which weighted_round_robin prefers to CPU when set, and other named
// metrics are the application's own, through the recorder.
package loadreport

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/orca"
)

// InFlightMetric is the named metric that carries the greetings in flight
// on the server when the report was made.
const InFlightMetric = "in_flight_greetings"

// Reporter measures load and records it for ORCA reports.
type Reporter struct {
	rec      orca.ServerMetricsRecorder
	named    namedMetrics // rec's own SetNamedMetric; nil if it has none
	interval time.Duration
	prefixes []string // the methods counted: "/SERVICE/"

	inFlight atomic.Int64
	served   atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts a Reporter that samples every interval and counts the calls
// to the named services; Stop ends it.
func New(interval time.Duration, services []string) *Reporter {
	r := &Reporter{rec: orca.NewServerMetricsRecorder(), interval: interval}
	for _, s := range services {
		r.prefixes = append(r.prefixes, "/"+s+"/")
	}
	r.named, _ = r.rec.(namedMetrics)
	r.setInFlight(0)
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	// The baseline is taken here, not in the goroutine, so that calls
	// served before it runs are counted.
	wall, cpu := time.Now(), cpuTime()
	r.wg.Add(1)
	go r.run(ctx, wall, cpu)
	return r
}

// Recorder returns the recorder the reports are made from.
func (r *Reporter) Recorder() orca.ServerMetricsRecorder { return r.rec }

// ServerOptions are the grpc server options that put a report in the
// trailer of every call.
func (r *Reporter) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{orca.CallMetricsServerOption(r.rec)}
}

// Register registers the OpenRcaService on s. grpc-go sends its reports at
// most every 30s, whatever the interval and what clients ask.
func (r *Reporter) Register(s grpc.ServiceRegistrar) error {
	return orca.Register(s, orca.ServiceOptions{ServerMetricsProvider: r.rec, MinReportingInterval: r.interval})
}

// Stop stops sampling and returns when it has.
func (r *Reporter) Stop() {
	r.cancel()
	r.wg.Wait()
}

func (r *Reporter) counted(method string) bool {
	for _, p := range r.prefixes {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}

// namedMetrics is the method of grpc's recorder that sets a named metric
// (ORCA's named_metrics, any value), which its ServerMetricsRecorder
// interface leaves out.
type namedMetrics interface {
	SetNamedMetric(name string, val float64)
}

func (r *Reporter) setInFlight(n int64) {
	if r.named != nil {
		r.named.SetNamedMetric(InFlightMetric, float64(n))
	}
}

// end counts a call that ended and puts the greetings still in flight in
// its own report (call, from grpc's orca interceptor; nil without it),
// which overrides the server's, sampled every interval.
func (r *Reporter) end(call orca.CallMetricsRecorder) {
	r.served.Add(1)
	n := r.inFlight.Add(-1)
	if call != nil {
		call.SetNamedMetric(InFlightMetric, float64(n))
	}
}

// UnaryServerInterceptor counts the unary calls to the services and has
// grpc's orca interceptor, which must run outside it, put a report in
// their trailers.
func (r *Reporter) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !r.counted(info.FullMethod) {
			return h(ctx, req)
		}
		// orca sends a report only for calls that asked for their
		// recorder.
		call := orca.CallMetricsRecorderFromContext(ctx)
		r.inFlight.Add(1)
		defer r.end(call)
		return h(ctx, req)
	}
}

// StreamServerInterceptor counts the streams of the services, with a
// report in their trailers.
func (r *Reporter) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if !r.counted(info.FullMethod) {
			return h(srv, ss)
		}
		call := orca.CallMetricsRecorderFromContext(ss.Context())
		r.inFlight.Add(1)
		defer r.end(call)
		return h(srv, ss)
	}
}

func (r *Reporter) run(ctx context.Context, lastWall time.Time, lastCPU time.Duration) {
	defer r.wg.Done()
	t := time.NewTicker(r.interval)
	defer t.Stop()
	var lastServed int64
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wall, cpu, served := time.Now(), cpuTime(), r.served.Load()
		secs := wall.Sub(lastWall).Seconds()
		if secs <= 0 {
			continue
		}
		if cpu >= 0 && lastCPU >= 0 {
			r.rec.SetCPUUtilization((cpu - lastCPU).Seconds() / (secs * float64(runtime.GOMAXPROCS(0))))
		}
		r.rec.SetQPS(float64(served-lastServed) / secs)
		r.setInFlight(r.inFlight.Load())
		if limit := debug.SetMemoryLimit(-1); limit > 0 && limit < math.MaxInt64 {
			metrics.Read(samples)
			held := samples[0].Value.Uint64() - samples[1].Value.Uint64()
			r.rec.SetMemoryUtilization(float64(held) / float64(limit))
		}
		lastWall, lastCPU, lastServed = wall, cpu, served
	}
}
