// Package wire holds the names a greeter client and a greeter server both
// read on the wire: metadata keys, and the domain and reasons of the
// errdetails.ErrorInfo a server attaches when it ends a call for a deadline
// of its own. One side writes them, the other reads them; both import them
// from here.
package wire

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc/metadata"
)

// ErrorInfoDomain marks the ErrorInfo details greeter servers attach, so
// that greeter clients can tell the server's own deadline from theirs.
const ErrorInfoDomain = "greeter.grpc-greeter.github.com"

// Reasons of the ErrorInfo a greeter server attaches, and the metadata key
// each carries its duration in ("2s").
const (
	ReasonServerCap     = "SERVER_DEADLINE_CAP"     // metadata "cap"
	ReasonServerDefault = "SERVER_DEFAULT_DEADLINE" // metadata "default"
	ReasonMinBudget     = "BUDGET_BELOW_MINIMUM"    // metadata "min"

	MetaCap     = "cap"
	MetaDefault = "default"
	MetaMin     = "min"
)

// TrailerDeadlineCap is the trailer in which a server reports the cap it
// put on a call's budget, as a Go duration, for clients in any language.
const TrailerDeadlineCap = "greeter-deadline-cap"

// PreviousAttemptsHeader is the header in which grpc's retries (and
// greeter's hedging and per-attempt retries) tell the server how many
// attempts of this call came before; absent on a first attempt.
const PreviousAttemptsHeader = "grpc-previous-rpc-attempts"

// HopsHeader counts the greeter relays a call has passed through: each
// relay sends its upstream one more than it received, and refuses a call
// that has passed too many, so that a loop of relays ends at once.
const HopsHeader = "greeter-hops"

// RequestIDHeader carries a request id, in a caller's request headers and
// in a server's response headers.
const RequestIDHeader = "x-request-id"

// PreviousAttempts reads [PreviousAttemptsHeader] from a server's incoming
// context: 0 on a first attempt or when the header is missing or malformed.
func PreviousAttempts(ctx context.Context) int { return count(ctx, PreviousAttemptsHeader) }

// WithAttempt returns ctx with [PreviousAttemptsHeader] set for a call's
// attempt number attempt (1 for the first, which sends no header).
func WithAttempt(ctx context.Context, attempt int) context.Context {
	if attempt <= 1 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, PreviousAttemptsHeader, strconv.Itoa(attempt-1))
}

// Round keeps durations in messages and logs readable: milliseconds are
// precise enough to say which deadline ran out, nanoseconds only add noise.
func Round(d time.Duration) time.Duration {
	if d >= time.Millisecond || d <= -time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// Hops reads [HopsHeader] from a server's incoming context: 0 when missing
// or malformed.
func Hops(ctx context.Context) int { return count(ctx, HopsHeader) }

// count reads a header that carries a count: 0 when missing, malformed or
// negative.
func count(ctx context.Context, header string) int {
	v := metadata.ValueFromIncomingContext(ctx, header)
	if len(v) == 0 {
		return 0
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 0 {
		return 0
	}
	return n
}
