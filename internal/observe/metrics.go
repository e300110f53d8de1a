package observe

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of greeter's own instruments.
const ScopeName = "github.com/grpc-greeter/greeter"

// Attribute keys of greeter's own instruments, beside grpc-go's
// grpc.method and grpc.status.
const (
	attrMethod = "grpc.method"
	attrStatus = "grpc.status"
	attrSource = "greeter.budget.source"
	attrPhase  = "greeter.phase"
)

// ServerMetrics are a server's greeter_* instruments. A nil *ServerMetrics
// records nothing.
type ServerMetrics struct {
	expired  metric.Int64Counter
	overruns metric.Int64Counter
}

// NewServerMetrics makes the server's instruments on mp.
func NewServerMetrics(mp metric.MeterProvider) (*ServerMetrics, error) {
	m := mp.Meter(ScopeName)
	var s ServerMetrics
	var err error
	if s.expired, err = m.Int64Counter("greeter.server.deadline.exceeded", metric.WithUnit("{call}"),
		metric.WithDescription("Calls the server ended with DeadlineExceeded, by method and by where the budget that ran out came from: client (the caller's deadline), server_default, server_cap, or min_budget (refused at once: less left than the server's minimum).")); err != nil {
		return nil, err
	}
	if s.overruns, err = m.Int64Counter("greeter.server.handler.overruns", metric.WithUnit("{call}"),
		metric.WithDescription("Handlers that kept running longer than the overrun grace after their call's context ended, by method.")); err != nil {
		return nil, err
	}
	return &s, nil
}

// DeadlineExceeded counts a call of method the server ended with
// DeadlineExceeded, the budget from source.
func (s *ServerMetrics) DeadlineExceeded(ctx context.Context, method, source string) {
	if s == nil {
		return
	}
	s.expired.Add(ctx, 1, metric.WithAttributes(attribute.String(attrMethod, trimSlash(method)), attribute.String(attrSource, source)))
}

// Overrun counts a handler of method that outlived its call.
func (s *ServerMetrics) Overrun(method string) {
	if s == nil {
		return
	}
	s.overruns.Add(context.Background(), 1, metric.WithAttributes(attribute.String(attrMethod, trimSlash(method))))
}

// ClientMetrics are a client's greeter_* instruments. A nil *ClientMetrics
// records nothing.
type ClientMetrics struct {
	deadline metric.Int64Counter
}

// NewClientMetrics makes the client's instruments on mp.
func NewClientMetrics(mp metric.MeterProvider) (*ClientMetrics, error) {
	var c ClientMetrics
	var err error
	if c.deadline, err = mp.Meter(ScopeName).Int64Counter("greeter.client.deadline.errors", metric.WithUnit("{call}"),
		metric.WithDescription("Calls that ended with DeadlineExceeded or Canceled, by method, status, the source of the budget (caller, client_default, service_config, per_attempt, server_cap, server_default, stream_idle, none) and the phase the call was in (before_send, connecting, server, backoff): greeter.DeadlineError's Source and Phase.")); err != nil {
		return nil, err
	}
	return &c, nil
}

// DeadlineError counts a call of method that ended with code (the name of
// a gRPC code), its budget from source, in phase.
func (c *ClientMetrics) DeadlineError(ctx context.Context, method, code, source, phase string) {
	if c == nil {
		return
	}
	c.deadline.Add(ctx, 1, metric.WithAttributes(attribute.String(attrMethod, trimSlash(method)), attribute.String(attrStatus, code),
		attribute.String(attrSource, source), attribute.String(attrPhase, phase)))
}

// trimSlash writes a full method name as grpc-go's instruments do:
// "Greeter/SayHello".
func trimSlash(method string) string { return strings.TrimPrefix(method, "/") }
