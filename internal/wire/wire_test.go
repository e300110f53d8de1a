package wire_test

import (
	"context"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter/internal/wire"
	"go.uber.org/goleak"
	"google.golang.org/grpc/metadata"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPreviousAttempts(t *testing.T) {
	tests := []struct {
		name string
		md   metadata.MD // nil: no incoming metadata at all
		want int
	}{
		{"no metadata", nil, 0},
		{"no header", metadata.Pairs("other", "3"), 0},
		{"zero", metadata.Pairs(wire.PreviousAttemptsHeader, "0"), 0},
		{"two", metadata.Pairs(wire.PreviousAttemptsHeader, "2"), 2},
		{"first value counts", metadata.Pairs(wire.PreviousAttemptsHeader, "4", wire.PreviousAttemptsHeader, "1"), 4},
		{"negative", metadata.Pairs(wire.PreviousAttemptsHeader, "-1"), 0},
		{"not a number", metadata.Pairs(wire.PreviousAttemptsHeader, "two"), 0},
		{"empty", metadata.Pairs(wire.PreviousAttemptsHeader, ""), 0},
		{"overflow", metadata.Pairs(wire.PreviousAttemptsHeader, "99999999999999999999999"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tt.md)
			}
			if got := wire.PreviousAttempts(ctx); got != tt.want {
				t.Fatalf("PreviousAttempts(%v) = %d, want %d", tt.md, got, tt.want)
			}
		})
	}
}

func TestPreviousAttemptsReadsIncomingOnly(t *testing.T) {
	// A server reads what its caller sent, not what it sends onward.
	ctx := metadata.AppendToOutgoingContext(context.Background(), wire.PreviousAttemptsHeader, "3")
	if got := wire.PreviousAttempts(ctx); got != 0 {
		t.Fatalf("PreviousAttempts of an outgoing header = %d, want 0", got)
	}
}

func TestWithAttemptRoundTrip(t *testing.T) {
	for attempt := -1; attempt <= 5; attempt++ {
		ctx := wire.WithAttempt(context.Background(), attempt)
		out, _ := metadata.FromOutgoingContext(ctx)
		vals := out.Get(wire.PreviousAttemptsHeader)
		if attempt <= 1 {
			if len(vals) != 0 {
				t.Errorf("WithAttempt(%d) sends %s: %q, want no header", attempt, wire.PreviousAttemptsHeader, vals)
			}
		} else if len(vals) != 1 {
			t.Errorf("WithAttempt(%d) sends %s: %q, want one value", attempt, wire.PreviousAttemptsHeader, vals)
		}
		// What the client sends is what the server reads.
		in := metadata.NewIncomingContext(context.Background(), out)
		want := max(attempt-1, 0)
		if got := wire.PreviousAttempts(in); got != want {
			t.Errorf("PreviousAttempts(WithAttempt(%d)) = %d, want %d", attempt, got, want)
		}
	}
}

func TestWithAttemptKeepsOtherMetadata(t *testing.T) {
	ctx := metadata.AppendToOutgoingContext(context.Background(), wire.RequestIDHeader, "id-1")
	ctx = wire.WithAttempt(ctx, 3)
	out, _ := metadata.FromOutgoingContext(ctx)
	if got := out.Get(wire.RequestIDHeader); len(got) != 1 || got[0] != "id-1" {
		t.Fatalf("%s after WithAttempt = %q, want [id-1]", wire.RequestIDHeader, got)
	}
	if got := out.Get(wire.PreviousAttemptsHeader); len(got) != 1 || got[0] != "2" {
		t.Fatalf("%s = %q, want [2]", wire.PreviousAttemptsHeader, got)
	}
}

func TestRound(t *testing.T) {
	tests := []struct {
		in, want time.Duration
	}{
		{0, 0},
		{1, 0},
		{499, 0},
		{500, time.Microsecond},
		{1499, time.Microsecond},
		{1500, 2 * time.Microsecond},
		{-1500, -2 * time.Microsecond},
		{999_499, 999 * time.Microsecond},
		{999_999, time.Millisecond},
		{time.Millisecond, time.Millisecond},
		{1_234_567, time.Millisecond},
		{1_499_999, time.Millisecond},
		{1_500_000, 2 * time.Millisecond},
		{-1_500_000, -2 * time.Millisecond},
		{2*time.Second + 345_678_901, 2346 * time.Millisecond},
		{time.Hour + 1, time.Hour},
	}
	for _, tt := range tests {
		if got := wire.Round(tt.in); got != tt.want {
			t.Errorf("Round(%d) = %v, want %v", int64(tt.in), got, tt.want)
		}
	}
}

func TestNamesAreValidMetadataKeys(t *testing.T) {
	// Metadata keys go on the wire lower-case; a key with upper case
	// would not be found again by the other side's lookups.
	for _, k := range []string{wire.TrailerDeadlineCap, wire.PreviousAttemptsHeader, wire.RequestIDHeader} {
		md := metadata.Pairs(k, "v")
		if got := md.Get(k); len(got) != 1 {
			t.Errorf("metadata key %q does not round-trip: %v", k, md)
		}
		for _, c := range k {
			if c >= 'A' && c <= 'Z' {
				t.Errorf("metadata key %q has upper case", k)
			}
		}
	}
}
