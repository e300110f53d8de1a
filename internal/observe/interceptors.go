package observe

import (
	"context"
	"log/slog"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-greeter/greeter/internal/wire"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Field and attribute keys of the budget, in log lines and on spans.
const (
	KeyBudgetMs     = "greeter.budget_ms"
	KeyBudgetSource = attrSource
	KeyRequestID    = "greeter.request_id"
	KeyPeerIdentity = "greeter.peer_identity"
	// keyPeerAddress is go-grpc-middleware's key of the peer on a
	// server's line, for a client's line too.
	keyPeerAddress = "peer.address"
)

// ServerConfig says what a server's observing interceptors do.
type ServerConfig struct {
	// Logger gets one line per call ("finished call", at go-grpc-middleware's
	// level for the call's code); nil logs nothing.
	Logger *slog.Logger
	// Trace writes the call's budget and its source onto its span (the
	// one grpc-go's OpenTelemetry tracing started), when it records.
	Trace bool
	// RequestID returns the call's request id, if it has one.
	RequestID func(context.Context) (string, bool)
}

// Enabled reports whether the interceptors do anything at all: without,
// calls carry no Note.
func (c ServerConfig) Enabled() bool { return c.Logger != nil || c.Trace }

// logger adapts a *slog.Logger to go-grpc-middleware's logging.Logger:
// its levels are slog's.
func logger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// serverFields are the fields greeter adds to go-grpc-middleware's own
// (method, code, duration, peer address): the budget, its source, the
// request id and the peer's identity. The logging interceptor asks at the
// start of the call and again at its end, when the guard has said what the
// budget was.
func (c ServerConfig) serverFields(ctx context.Context, _ interceptors.CallMeta) logging.Fields {
	f := make(logging.Fields, 0, 8)
	if n := NoteFrom(ctx); n != nil {
		f = append(f, KeyBudgetSource, n.Source)
		if n.Source != SourceNone {
			f = append(f, KeyBudgetMs, n.Budget.Milliseconds())
		}
	}
	if c.RequestID != nil {
		if id, ok := c.RequestID(ctx); ok {
			f = append(f, KeyRequestID, id)
		}
	}
	if r, ok := ctx.Value(replayKey{}).(*replay); ok {
		// These win over the logging interceptor's own, measured
		// around the replay.
		f = append(f, "grpc.start_time", r.start.Format(time.RFC3339))
		f = append(f, logging.DurationToTimeMillisFields(r.took)...)
	}
	return f
}

func (c ServerConfig) logOptions() []logging.Option {
	return []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithFieldsFromContextAndCallMeta(c.serverFields),
	}
}

// annotate writes n onto ctx's span, when it records.
func annotate(ctx context.Context, n *Note) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{attribute.String(KeyBudgetSource, n.Source)}
	if n.Source != SourceNone {
		attrs = append(attrs, attribute.Int64(KeyBudgetMs, n.Budget.Milliseconds()))
	}
	span.SetAttributes(attrs...)
}

// UnaryServerInterceptor notes each unary call's budget, logs the call
// when it ends and writes the budget onto its span; nil when c asks for
// neither.
//
// go-grpc-middleware's logging interceptor builds a call's fields before
// the handler runs, whether or not the line is kept. When the logger drops
// Info, the level of a successful call, the handler runs first and the
// interceptor is asked only for a call whose line the logger keeps, told
// when the call began and how long it took (replayed): a server that logs
// only failures pays nothing for the calls that succeed.
func UnaryServerInterceptor(c ServerConfig) grpc.UnaryServerInterceptor {
	if !c.Enabled() {
		return nil
	}
	var log grpc.UnaryServerInterceptor
	if c.Logger != nil {
		log = logging.UnaryServerInterceptor(logger(c.Logger), c.logOptions()...)
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		n := callersBudget(ctx, start)
		ctx = withNote(ctx, &n)
		switch {
		case log == nil:
			resp, err = h(ctx, req)
		case c.Logger.Enabled(ctx, slog.LevelInfo):
			resp, err = log(ctx, req, info, h)
		default:
			resp, err = h(ctx, req)
			if c.keeps(ctx, err) {
				replayed := context.WithValue(ctx, replayKey{}, &replay{start: start, took: time.Since(start)})
				_, _ = log(replayed, req, info, func(context.Context, any) (any, error) { return resp, err })
			}
		}
		if c.Trace {
			annotate(ctx, &n)
		}
		return resp, err
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func StreamServerInterceptor(c ServerConfig) grpc.StreamServerInterceptor {
	if !c.Enabled() {
		return nil
	}
	var log grpc.StreamServerInterceptor
	if c.Logger != nil {
		log = logging.StreamServerInterceptor(logger(c.Logger), c.logOptions()...)
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		start := time.Now()
		ctx := ss.Context()
		n := callersBudget(ctx, start)
		ctx = withNote(ctx, &n)
		switch {
		case log == nil:
			err = h(srv, &noteStream{ServerStream: ss, ctx: ctx})
		case c.Logger.Enabled(ctx, slog.LevelInfo):
			err = log(srv, &noteStream{ServerStream: ss, ctx: ctx}, info, h)
		default:
			err = h(srv, &noteStream{ServerStream: ss, ctx: ctx})
			if c.keeps(ctx, err) {
				replayed := context.WithValue(ctx, replayKey{}, &replay{start: start, took: time.Since(start)})
				_ = log(srv, &noteStream{ServerStream: ss, ctx: replayed}, info, func(any, grpc.ServerStream) error { return err })
			}
		}
		if c.Trace {
			annotate(ctx, &n)
		}
		return err
	}
}

// keeps reports whether the logger keeps the line of a call that ended
// with err, at the level go-grpc-middleware gives its code (the levels
// are slog's).
func (c ServerConfig) keeps(ctx context.Context, err error) bool {
	return c.Logger.Enabled(ctx, slog.Level(logging.DefaultServerCodeToLevel(status.Code(err))))
}

// replay is a call that has run, logged afterwards: when it began and
// how long it took, the fields go-grpc-middleware would have measured.
type replay struct {
	start time.Time
	took  time.Duration
}

type replayKey struct{}

// noteStream gives a stream's handler the context with its note.
type noteStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *noteStream) Context() context.Context { return s.ctx }

// ClientConfig says what a client's observing interceptors do.
type ClientConfig struct {
	// Logger gets one line per call, as on a server; nil logs nothing.
	Logger *slog.Logger
	// Trace writes the call's budget and its source onto its span.
	Trace bool
}

func (c ClientConfig) enabled() bool { return c.Logger != nil || c.Trace }

// WithClientSource records on a client call's context where its budget
// came from (a greeter.DeadlineSource, in the words of the client's
// instruments), for the client's log line and span.
func WithClientSource(ctx context.Context, source string) context.Context {
	n := &Note{Source: source}
	if dl, ok := ctx.Deadline(); ok {
		n.Budget = time.Until(dl)
	}
	return withNote(ctx, n)
}

// answer is what a client's unary call learns of the server that answered
// it, for its log line: the peer, and the response header, in which a
// server with request ids echoes the call's.
type answer struct {
	peer   *peer.Peer
	header *metadata.MD
}

type answerKey struct{}

// withAnswer returns ctx carrying an answer, and opts with the grpc.Peer
// and grpc.Header options that fill it in when the call ends. A caller's
// own options of those kinds are reused rather than joined by second ones:
// hedging honours only one of each.
func withAnswer(ctx context.Context, opts []grpc.CallOption) (context.Context, []grpc.CallOption) {
	a := &answer{}
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.PeerCallOption:
			a.peer = o.PeerAddr
		case grpc.HeaderCallOption:
			a.header = o.HeaderAddr
		}
	}
	opts = opts[:len(opts):len(opts)] // never the caller's array
	if a.peer == nil {
		a.peer = new(peer.Peer)
		opts = append(opts, grpc.Peer(a.peer))
	}
	if a.header == nil {
		a.header = new(metadata.MD)
		opts = append(opts, grpc.Header(a.header))
	}
	return context.WithValue(ctx, answerKey{}, a), opts
}

// clientFields are the fields greeter adds to a client's line: the budget
// and its source, and for a unary call, once it has ended, the peer that
// answered and the request id (the server's echo, or the caller's own).
// The logging interceptor asks at the start of the call and again at its
// end.
func clientFields(ctx context.Context, _ interceptors.CallMeta) logging.Fields {
	var f logging.Fields
	if n := NoteFrom(ctx); n != nil {
		f = append(f, KeyBudgetSource, n.Source)
		if n.Source != SourceNone {
			f = append(f, KeyBudgetMs, n.Budget.Milliseconds())
		}
	}
	if a, _ := ctx.Value(answerKey{}).(*answer); a != nil {
		if a.peer.Addr != nil {
			f = append(f, keyPeerAddress, a.peer.Addr.String())
		}
		id := a.header.Get(wire.RequestIDHeader)
		if len(id) == 0 {
			id = metadata.ValueFromOutgoingContext(ctx, wire.RequestIDHeader)
		}
		if len(id) > 0 {
			f = append(f, KeyRequestID, id[0])
		}
	}
	return f
}

func (c ClientConfig) logOptions() []logging.Option {
	return []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithFieldsFromContextAndCallMeta(clientFields),
	}
}

// UnaryClientInterceptor logs each unary call when it ends and writes its
// budget onto its span; nil when c asks for neither. The call's budget
// and source are those WithClientSource recorded.
func UnaryClientInterceptor(c ClientConfig) grpc.UnaryClientInterceptor {
	if !c.enabled() {
		return nil
	}
	var log grpc.UnaryClientInterceptor
	if c.Logger != nil {
		log = logging.UnaryClientInterceptor(logger(c.Logger), c.logOptions()...)
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if n := NoteFrom(ctx); c.Trace && n != nil {
			annotate(ctx, n)
		}
		if log == nil {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		// A unary call's options are done with when invoke returns, on
		// this goroutine: its line can read what they filled in. (A
		// stream's may be filled in on another of grpc's goroutines,
		// so a stream's line has no peer.)
		ctx, opts = withAnswer(ctx, opts)
		return log(ctx, method, req, reply, cc, invoker, opts...)
	}
}

// StreamClientInterceptor is UnaryClientInterceptor for streams.
func StreamClientInterceptor(c ClientConfig) grpc.StreamClientInterceptor {
	if !c.enabled() {
		return nil
	}
	var log grpc.StreamClientInterceptor
	if c.Logger != nil {
		log = logging.StreamClientInterceptor(logger(c.Logger), c.logOptions()...)
	}
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if n := NoteFrom(ctx); c.Trace && n != nil {
			annotate(ctx, n)
		}
		if log == nil {
			return streamer(ctx, desc, cc, method, opts...)
		}
		return log(ctx, desc, cc, method, streamer, opts...)
	}
}
