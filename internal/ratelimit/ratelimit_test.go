package ratelimit

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type clientKey struct{}

func keyOf(ctx context.Context) string { return ctx.Value(clientKey{}).(string) }

func as(client string) context.Context {
	return context.WithValue(context.Background(), clientKey{}, client)
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(10, 2, keyOf, func(m string) bool { return m == "/free" }, func() time.Time { return now })
	for i := range 2 {
		if err := l.Allow(as("a"), "/m"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	err := l.Allow(as("a"), "/m")
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || st.Message() != "rate limit exceeded: client a may make 10 calls a second (bursts of 2); retry after 101ms" {
		t.Fatalf("third call: %v", err)
	}
	var delay time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	if delay != 101*time.Millisecond {
		t.Fatalf("RetryInfo delay %v, want 101ms", delay)
	}
	if err := l.Allow(as("b"), "/m"); err != nil {
		t.Fatalf("another client: %v", err)
	}
	if err := l.Allow(as("a"), "/free"); err != nil {
		t.Fatalf("a skipped method: %v", err)
	}
	// A refused call takes no token: after the delay the client is let in.
	now = now.Add(101 * time.Millisecond)
	if err := l.Allow(as("a"), "/m"); err != nil {
		t.Fatalf("after the retry delay: %v", err)
	}
}

// TestLimiterBounded: buckets of clients gone idle are dropped, so that
// many clients, one call each, do not grow the map without bound.
func TestLimiterBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(100, 1, keyOf, nil, func() time.Time { return now })
	for i := range 10 * minSweep {
		if err := l.Allow(as(strconv.Itoa(i)), "/m"); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Millisecond) // each bucket refills in 10ms
	}
	if n := l.Len(); n > 2*minSweep {
		t.Fatalf("%d buckets after %d clients that each called once; want at most %d", n, 10*minSweep, 2*minSweep)
	}
}

// TestLimiterTinyRate: a rate so small that the wait overflows a
// time.Duration still answers with a positive retry delay.
func TestLimiterTinyRate(t *testing.T) {
	l := New(1e-12, 1, keyOf, nil, nil)
	if err := l.Allow(as("a"), "/m"); err != nil {
		t.Fatal(err)
	}
	st := status.Convert(l.Allow(as("a"), "/m"))
	var delay time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	if st.Code() != codes.ResourceExhausted || delay <= 0 || strings.Contains(st.Message(), "after -") {
		t.Fatalf("second call: %v, RetryInfo delay %v; want ResourceExhausted with a positive delay", st.Err(), delay)
	}
}
