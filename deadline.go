package greeter

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/grpc-greeter/greeter/internal/wire"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DeadlinePolicy is a server's rule for the budgets of the calls it serves.
// A zero field is off; the zero DeadlinePolicy changes no budget but still
// makes the server report deadlines exactly (see [WithServerDeadlines]).
// Each budget ends with DeadlineExceeded and, for the server's own, an
// ErrorInfo detail that a greeter [Client] reads into [DeadlineError].Source.
type DeadlinePolicy struct {
	// Default is the budget given to a call that arrives with no deadline,
	// so that a client that set none cannot pin the server. Zero: such
	// calls run with no deadline unless Max is set.
	Default time.Duration
	// Max clamps longer budgets, and calls with no deadline when Default is
	// zero. A call that runs out of the server's cap ends with
	// DeadlineExceeded, an ErrorInfo detail (reason SERVER_DEADLINE_CAP,
	// metadata "cap") and the trailer greeter-deadline-cap, so that the
	// client can tell the server's deadline from its own.
	Max time.Duration
	// MinBudget refuses at once, with DeadlineExceeded, a call arriving with
	// less time left than this, instead of starting work it cannot finish.
	MinBudget time.Duration
}

func (p DeadlinePolicy) validate(where string) error {
	switch {
	case p.Default < 0 || p.Max < 0 || p.MinBudget < 0:
		return fmt.Errorf("greeter: %s: negative duration in %+v", where, p)
	case p.Max > 0 && p.Default > p.Max:
		return fmt.Errorf("greeter: %s: Default %v exceeds Max %v", where, p.Default, p.Max)
	case p.Max > 0 && p.MinBudget > p.Max:
		return fmt.Errorf("greeter: %s: MinBudget %v exceeds Max %v: every call would be refused", where, p.MinBudget, p.Max)
	case p.Default > 0 && p.MinBudget > p.Default:
		return fmt.Errorf("greeter: %s: MinBudget %v exceeds Default %v: calls without deadline would be refused", where, p.MinBudget, p.Default)
	}
	return nil
}

// TrailerDeadlineCap is the trailer in which a server reports the cap it put
// on a call's budget ([DeadlinePolicy].Max), as a Go duration ("2s"), for
// clients in any language.
const TrailerDeadlineCap = wire.TrailerDeadlineCap

// Remaining returns the time left before ctx's deadline, and false when ctx
// has none. In a greeter handler it is the budget after the server's policy.
func Remaining(ctx context.Context) (time.Duration, bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	return time.Until(dl), true
}

// DeadlineSource says where the budget of a call came from.
type DeadlineSource int

// The sources of a call's budget, from the caller's side of the call.
const (
	// SourceNone means the call had no deadline at all.
	SourceNone DeadlineSource = iota
	// SourceCaller is the deadline of the context the caller passed.
	SourceCaller
	// SourceClientDefault is the client's default timeout, given to a call
	// whose context had no deadline: see [WithDefaultTimeout].
	SourceClientDefault
	// SourceServiceConfig is the method's timeout in the client's gRPC
	// service config (methodConfig[].timeout), when it was the tighter one.
	SourceServiceConfig
	// SourcePerAttempt is the per-attempt timeout of
	// [WithPerAttemptTimeout].
	SourcePerAttempt
	// SourceServerCap is the server's own maximum for the method, which it
	// reports back when it ends a call: see [DeadlinePolicy].
	SourceServerCap
	// SourceServerDefault is the server's default budget for calls that
	// arrive without a deadline, which it reports back the same way.
	SourceServerDefault
	// SourceStreamIdle is the idle timeout of [WithStreamIdleTimeout].
	SourceStreamIdle
)

// String names the source as the explanation of a [DeadlineError] does:
// "caller's context", "client default", and so on.
func (s DeadlineSource) String() string {
	switch s {
	case SourceNone:
		return "no deadline"
	case SourceCaller:
		return "caller's context"
	case SourceClientDefault:
		return "client default"
	case SourceServiceConfig:
		return "service-config method timeout"
	case SourcePerAttempt:
		return "per-attempt timeout"
	case SourceServerCap:
		return "server's cap"
	case SourceServerDefault:
		return "server's default"
	case SourceStreamIdle:
		return "stream idle timeout"
	}
	return fmt.Sprintf("DeadlineSource(%d)", int(s))
}

// Phase says where a call was when its deadline ran out or it was
// cancelled.
type Phase int

// The phases of a call, in the order a call goes through them.
const (
	// PhaseBeforeSend: the context had already ended when the call was
	// made; nothing was sent and the server saw nothing.
	PhaseBeforeSend Phase = iota + 1
	// PhaseConnecting: the call was waiting for a connection (name
	// resolution, connecting, or a wait-for-ready call waiting for the
	// server) and was never sent.
	PhaseConnecting
	// PhaseServer: the request was sent and the reply did not come in time,
	// or the server itself ended the call.
	PhaseServer
	// PhaseBackoff: the call was waiting between two attempts.
	PhaseBackoff
)

// String says where the call was, as the explanation of a [DeadlineError]
// does: "before send", "on the server", and so on.
func (p Phase) String() string {
	switch p {
	case PhaseBeforeSend:
		return "before send"
	case PhaseConnecting:
		return "while waiting for a connection"
	case PhaseServer:
		return "on the server"
	case PhaseBackoff:
		return "in retry backoff"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// DeadlineError explains a call that ended with DeadlineExceeded or
// Canceled: which budget ran out, where it came from, where the call was,
// and how many attempts were made. Every [Client] method returns one for
// those two codes; get it with errors.As.
//
// It keeps its gRPC code: status.Code(err) is codes.DeadlineExceeded or
// codes.Canceled, and errors.Is(err, context.DeadlineExceeded) (or
// context.Canceled) holds, so code written against plain grpc-go works
// unchanged.
type DeadlineError struct {
	// Code is codes.DeadlineExceeded or codes.Canceled.
	Code codes.Code
	// Method is the full method name, "/Greeter/SayHello".
	Method string
	// Budget is the time the call was given by Source; zero when it had no
	// deadline.
	Budget time.Duration
	// Elapsed is the time from the call's start to its end.
	Elapsed time.Duration
	// Source is where Budget came from.
	Source DeadlineSource
	// Phase is where the call was when it ended.
	Phase Phase
	// Attempts is how many times greeter tried the request: 0 when it
	// never left, more than 1 under [WithPerAttemptTimeout].
	Attempts int
	// LastCode is the code of the last attempt, which may differ from Code
	// when the deadline ran out between attempts.
	LastCode codes.Code
	// GRPCRetries is true when the method had a retry policy in the
	// client's service config ([DefaultServiceConfig] has one): grpc may
	// then have retried within greeter's attempt, and then LastCode and
	// Phase describe the end of grpc's last try. grpc-go reports its
	// retries to no one but stats handlers, whose price every call would
	// pay; the server sees them in the grpc-previous-rpc-attempts header.
	GRPCRetries bool
	// Detail is what the server, or grpc, said about the end of the call.
	Detail string
	// Connection says why there was no connection, for a call that ended
	// in [PhaseConnecting]; nil otherwise.
	Connection *ConnectionError

	err error
	// st is GRPCStatus's answer, built once: status.Code(err) asks for
	// it every time.
	st atomic.Pointer[status.Status]
}

// Error explains the end of the call in one line: "deadline exceeded after
// 100ms (budget 100ms from caller's context) on the server; 1 attempt, last:
// DeadlineExceeded".
func (e *DeadlineError) Error() string {
	var buf [256]byte
	return string(e.appendExplanation(buf[:0], true))
}

// appendExplanation appends the explanation to b, with the time the call
// took when elapsed is set. Plain appends, not fmt: status.Code(err) asks
// for the explanation, in every deadline storm.
func (e *DeadlineError) appendExplanation(b []byte, elapsed bool) []byte {
	if e.Code == codes.Canceled {
		b = append(b, "canceled"...)
	} else {
		b = append(b, "deadline exceeded"...)
	}
	if e.Phase == PhaseBeforeSend {
		switch {
		case e.Code == codes.Canceled:
			b = append(b, " before send: the context was canceled before the call"...)
		case e.Source != SourceNone:
			b = append(b, " before send: the deadline from "...)
			b = append(b, e.Source.String()...)
			b = append(b, " had passed "...)
			b = appendDuration(b, -e.Budget)
			b = append(b, " before the call"...)
		}
		return append(b, "; 0 attempts"...)
	}
	if elapsed {
		b = append(b, " after "...)
		b = appendDuration(b, e.Elapsed)
	}
	if e.Source != SourceNone {
		b = append(b, " (budget "...)
		b = appendDuration(b, e.Budget)
		b = append(b, " from "...)
		b = append(b, e.Source.String()...)
		b = append(b, ')')
	} else {
		b = append(b, " (no deadline)"...)
	}
	b = append(b, ' ')
	b = append(b, e.Phase.String()...)
	if e.Detail != "" {
		b = append(b, ": "...)
		b = append(b, e.Detail...)
	}
	b = append(b, "; "...)
	b = strconv.AppendInt(b, int64(e.Attempts), 10)
	if e.Attempts == 1 {
		b = append(b, " attempt, last: "...)
	} else {
		b = append(b, " attempts, last: "...)
	}
	b = append(b, e.LastCode.String()...)
	if e.GRPCRetries {
		b = append(b, " (grpc's retry policy may have retried within it)"...)
	}
	return b
}

// appendDuration appends wire.Round(d) as d.String() would, without its
// allocation in the usual case, a whole number of milliseconds under a
// second.
func appendDuration(b []byte, d time.Duration) []byte {
	d = wire.Round(d)
	if d%time.Millisecond == 0 && d > -time.Second && d < time.Second && d != 0 {
		return append(strconv.AppendInt(b, int64(d/time.Millisecond), 10), "ms"...)
	}
	return append(b, d.String()...)
}

// GRPCStatus returns the error as a gRPC status with the same code and the
// details of the original status, so that status.Code and status.Convert see
// through it. Its message is the explanation of Error without the time the
// call took ("deadline exceeded (budget 100ms from caller's context) on the
// server; 1 attempt, last: DeadlineExceeded"), so that calls that ended
// alike share one message, which logs can group.
func (e *DeadlineError) GRPCStatus() *status.Status {
	if st := e.st.Load(); st != nil {
		return st
	}
	p := status.Convert(e.err).Proto()
	p.Code = int32(e.Code)
	p.Message = string(e.appendExplanation(nil, false))
	st := status.FromProto(p)
	e.st.Store(st)
	return st
}

// Is reports whether target is the context error matching e's code, so that
// errors.Is(err, context.DeadlineExceeded) holds for a deadline.
func (e *DeadlineError) Is(target error) bool {
	switch target {
	case context.DeadlineExceeded:
		return e.Code == codes.DeadlineExceeded
	case context.Canceled:
		return e.Code == codes.Canceled
	}
	return false
}

// Unwrap returns the error grpc returned for the last attempt and, for a
// call that ended waiting for a connection, its [ConnectionError].
func (e *DeadlineError) Unwrap() []error {
	if e.Connection != nil {
		return []error{e.err, e.Connection}
	}
	return []error{e.err}
}
