// Package ratelimit limits the rate of calls per client with token buckets
// from golang.org/x/time/rate, answering ResourceExhausted with a
// RetryInfo detail that says when to try again. go-grpc-middleware's
// ratelimit interceptor has the same shape but flattens the refusal into
// its own message, with no retry delay a client can read.
package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"golang.org/x/time/rate"
)

// Limiter keeps one token bucket per client key.
type Limiter struct {
	limit rate.Limit
	burst int
	key   func(context.Context) string
	skip  func(fullMethod string) bool
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	// sweepAt is the bucket count at which idle buckets are dropped next.
	sweepAt int
}

// minSweep is the bucket count below which idle buckets are kept.
const minSweep = 1024

// New returns a Limiter allowing each client, as key names it, perSecond
// calls a second with bursts of burst; calls to methods skip reports true
// for are not counted. now is the clock (time.Now when nil).
func New(perSecond float64, burst int, key func(context.Context) string, skip func(string) bool, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{limit: rate.Limit(perSecond), burst: burst, key: key, skip: skip, now: now,
		buckets: map[string]*rate.Limiter{}, sweepAt: minSweep}
}

// Allow takes a token from the client's bucket, or returns the refusal.
func (l *Limiter) Allow(ctx context.Context, method string) error {
	if l.skip != nil && l.skip(method) {
		return nil
	}
	client := l.key(ctx)
	now := l.now()
	l.mu.Lock()
	b, ok := l.buckets[client]
	if !ok {
		if len(l.buckets) >= l.sweepAt {
			l.sweep(now)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[client] = b
	}
	r := b.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if delay > 0 {
		r.CancelAt(now)
	}
	l.mu.Unlock()
	if delay == 0 {
		return nil
	}
	// Whole milliseconds, rounded up: a client that waits that long is let
	// in. A wait too long for a Duration (rate.InfDuration, from a tiny
	// rate) stays as it is rather than overflowing.
	if delay < rate.InfDuration-time.Millisecond {
		delay = delay.Truncate(time.Millisecond) + time.Millisecond
	}
	st := status.New(codes.ResourceExhausted, fmt.Sprintf("rate limit exceeded: client %s may make %g calls a second (bursts of %d); retry after %v", client, float64(l.limit), l.burst, delay))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)}); err == nil {
		st = d
	}
	return st.Err()
}

// sweep drops the buckets that are full again, which a new bucket would
// equal, and sets the next sweep at twice the buckets left: the map stays
// within twice the clients active in the last burst/perSecond seconds.
func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	l.sweepAt = max(minSweep, 2*len(l.buckets))
}

// Len is how many client buckets the Limiter holds.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// UnaryServerInterceptor limits unary calls.
func (l *Limiter) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := l.Allow(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// StreamServerInterceptor limits streams: opening one counts as a call.
func (l *Limiter) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := l.Allow(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return h(srv, ss)
	}
}
