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
func UnaryServerInterceptor(c ServerConfig) grpc.UnaryServerInterceptor {
	if !c.Enabled() {
		return nil
	}
	next := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	}
	if c.Logger != nil {
		next = logging.UnaryServerInterceptor(logger(c.Logger), c.logOptions()...)
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		n := callersBudget(ctx, time.Now())
		ctx = withNote(ctx, &n)
		resp, err := next(ctx, req, info, h)
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
	next := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, ss)
	}
	if c.Logger != nil {
		next = logging.StreamServerInterceptor(logger(c.Logger), c.logOptions()...)
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx := ss.Context()
		n := callersBudget(ctx, time.Now())
		ctx = withNote(ctx, &n)
		err := next(srv, &noteStream{ServerStream: ss, ctx: ctx}, info, h)
		if c.Trace {
			annotate(ctx, &n)
		}
		return err
	}
}

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
