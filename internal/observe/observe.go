// Package observe is what greeter's signals share on a call: the note a
// call carries of its budget and where it came from, the greeter_*
// instruments that no stock instrumentation has (deadline expiries by the
// budget's source, handler overruns, the client's deadline errors by source
// and phase), and the per-call access log through go-grpc-middleware v2's
// logging interceptor, with the budget written onto the call's span.
package observe

import (
	"context"
	"time"
)

// Budget sources as the server sees them, the values of the
// greeter.budget.source attribute of server instruments, logs and spans.
const (
	SourceNone          = "none"           // the call had no deadline
	SourceClient        = "client"         // the caller's own deadline
	SourceServerDefault = "server_default" // the server's default for calls without one
	SourceServerCap     = "server_cap"     // the server's cap on longer ones
	SourceMinBudget     = "min_budget"     // refused: less left than the server's minimum
)

// Note is what a server call records of its budget, for the access log
// line and the span written when it ends. The deadline guard fills it in
// when it applies the policy; without a guard, the caller's deadline
// stands.
type Note struct {
	Budget time.Duration // 0 with no deadline
	Source string        // one of the Source constants
}

type noteKey struct{}

// withNote returns ctx carrying n.
func withNote(ctx context.Context, n *Note) context.Context {
	return context.WithValue(ctx, noteKey{}, n)
}

// NoteFrom returns the note of the call whose context is ctx, or nil when
// nothing observes the call.
func NoteFrom(ctx context.Context) *Note {
	n, _ := ctx.Value(noteKey{}).(*Note)
	return n
}

// callersBudget is the note of a call whose budget is its caller's
// deadline, as the server saw it arrive at now.
func callersBudget(ctx context.Context, now time.Time) Note {
	dl, ok := ctx.Deadline()
	if !ok {
		return Note{Source: SourceNone}
	}
	return Note{Budget: dl.Sub(now), Source: SourceClient}
}
