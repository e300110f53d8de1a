package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
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
