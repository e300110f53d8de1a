package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Off costs nothing: no interceptor at all.
func TestOffIsNil(t *testing.T) {
	if UnaryServerInterceptor(ServerConfig{}) != nil || StreamServerInterceptor(ServerConfig{}) != nil ||
		UnaryClientInterceptor(ClientConfig{}) != nil || StreamClientInterceptor(ClientConfig{}) != nil {
		t.Fatal("interceptors with nothing to do are not nil")
	}
	var s *ServerMetrics
	s.DeadlineExceeded(context.Background(), "/Greeter/SayHello", SourceClient) // nil records nothing, and does not panic
	s.Overrun("/Greeter/SayHello")
	var c *ClientMetrics
	c.DeadlineError(context.Background(), "/Greeter/SayHello", "DEADLINE_EXCEEDED", "caller", "server")
}

// TestLineWithNote checks the server's line: the budget and source the
// handler's side wrote into the note (as the deadline guard does), the
// request id and the peer's identity, at the level of the code.
func TestLineWithNote(t *testing.T) {
	var buf bytes.Buffer
	i := UnaryServerInterceptor(ServerConfig{
		Logger:    slog.New(slog.NewJSONHandler(&buf, nil)),
		RequestID: func(context.Context) (string, bool) { return "req-1", true },
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	info := &grpc.UnaryServerInfo{FullMethod: "/Greeter/SayHello"}
	_, err := i(ctx, nil, info, func(ctx context.Context, _ any) (any, error) {
		n := NoteFrom(ctx)
		if n == nil || n.Source != SourceClient || n.Budget <= 59*time.Minute {
			t.Errorf("the handler's note = %+v; want the caller's hour", n)
		}
		n.Source, n.Budget = SourceServerCap, 2*time.Second // as the guard does
		return nil, status.Error(codes.DeadlineExceeded, "late")
	})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v", err)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %v\n%s", err, buf.String())
	}
	want := map[string]any{
		"msg": "finished call", "level": "WARN", "grpc.method": "SayHello", "grpc.code": "DeadlineExceeded",
		KeyBudgetSource: SourceServerCap, KeyBudgetMs: float64(2000), KeyRequestID: "req-1",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v; want %v (line %v)", k, line[k], v, line)
		}
	}
}

// TestLineOnlyForKeptLevels: with a logger that drops Info, a successful
// call writes nothing, and a failed call's line, written after the
// handler has returned, still says when the call began and how long it
// took, for a unary call and a stream alike.
func TestLineOnlyForKeptLevels(t *testing.T) {
	var buf bytes.Buffer
	c := ServerConfig{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	unary, stream := UnaryServerInterceptor(c), StreamServerInterceptor(c)
	const budget = 50 * time.Millisecond
	waitForDeadline := func(ctx context.Context) error {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	calls := map[string]func(ctx context.Context, fail bool) error{
		"unary": func(ctx context.Context, fail bool) error {
			_, err := unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/Greeter/SayHello"}, func(ctx context.Context, _ any) (any, error) {
				if fail {
					return nil, waitForDeadline(ctx)
				}
				return "ok", nil
			})
			return err
		},
		"stream": func(ctx context.Context, fail bool) error {
			return stream(nil, &fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: "/Greeter/SayHelloStreamReply", IsServerStream: true}, func(_ any, ss grpc.ServerStream) error {
				if fail {
					return waitForDeadline(ss.Context())
				}
				return nil
			})
		},
	}
	for name, call := range calls {
		buf.Reset()
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		if err := call(ctx, false); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cancel()
		if buf.Len() != 0 {
			t.Errorf("%s: a successful call wrote %q at Warn", name, buf.String())
		}
		began := time.Now()
		ctx, cancel = context.WithTimeout(context.Background(), budget)
		err := call(ctx, true)
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("%s: err = %v; want DeadlineExceeded", name, err)
		}
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("%s: not one JSON line: %v\n%s", name, err, buf.String())
		}
		if line["grpc.code"] != "DeadlineExceeded" || line["level"] != "WARN" {
			t.Errorf("%s: line %v; want DeadlineExceeded at WARN", name, line)
		}
		// Measured around the handler, not around the line's writing.
		if ms, err := strconv.ParseFloat(fmt.Sprint(line["grpc.time_ms"]), 64); err != nil || ms < float64(budget.Milliseconds())*0.8 {
			t.Errorf("%s: grpc.time_ms = %v; want the call's %v or more", name, line["grpc.time_ms"], budget)
		}
		if start, err := time.Parse(time.RFC3339, fmt.Sprint(line["grpc.start_time"])); err != nil || start.After(began) {
			t.Errorf("%s: grpc.start_time = %v; want when the call began, no later than %v", name, line["grpc.start_time"], began.Format(time.RFC3339))
		}
	}
}

// fakeStream is a server stream with a context and nothing else.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *fakeStream) Context() context.Context { return s.ctx }
