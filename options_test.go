package greeter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc/keepalive"
)

// Every option value that grpc would take and fail on later (a panic on
// the first connection, every connection dropped) is refused at
// construction, with an error naming the option.
func TestHopelessOptionsRefused(t *testing.T) {
	servers := map[string]greeter.ServerOption{
		"WithServerKeepalive":       greeter.WithServerKeepalive(keepalive.ServerParameters{MaxConnectionAge: -1}),
		"WithServerKeepalive(Time)": greeter.WithServerKeepalive(keepalive.ServerParameters{Time: -time.Second, Timeout: time.Second}),
		"WithKeepaliveEnforcement":  greeter.WithKeepaliveEnforcement(keepalive.EnforcementPolicy{MinTime: -1}),
		"WithMaxConcurrentStreams":  greeter.WithMaxConcurrentStreams(0),
		"WithMaxHeaderListSize":     greeter.WithMaxHeaderListSize(100),
		"WithDrainDelay":            greeter.WithDrainDelay(-time.Second),
		"WithOverrunGrace":          greeter.WithOverrunGrace(0),
		"WithDelay":                 greeter.WithDelay(-time.Second),
		"WithStreamReplies":         greeter.WithStreamReplies(0),
		"WithFailFirst":             greeter.WithFailFirst(-1),
		"WithInitialWindowSize":     greeter.WithInitialWindowSize(1024),
		"WithCompressor":            greeter.WithCompressor("zstd-nonexistent"),
		"WithServerDeadlines":       greeter.WithServerDeadlines(greeter.DeadlinePolicy{Max: -time.Second}),
		"WithLogger":                greeter.WithLogger(nil),
		"WithMeterProvider":         greeter.WithMeterProvider(nil),
		"WithTracerProvider":        greeter.WithTracerProvider(nil),
		"WithPropagator":            greeter.WithPropagator(nil),
	}
	for name, o := range servers {
		option, _, _ := strings.Cut(name, "(")
		if _, err := greeter.NewServer(o); err == nil || !strings.Contains(err.Error(), option) {
			t.Errorf("NewServer(%s) = %v; want an error naming %s", name, err, option)
		}
	}
	clients := map[string]greeter.ClientOption{
		"WithClientKeepalive":       greeter.WithClientKeepalive(keepalive.ClientParameters{Time: -time.Second}),
		"WithPerAttemptTimeout":     greeter.WithPerAttemptTimeout(0, 3),
		"WithStreamIdleTimeout":     greeter.WithStreamIdleTimeout(-time.Second),
		"WithHedging":               greeter.WithHedging(greeter.HedgingPolicy{MaxAttempts: 1}),
		"WithInitialConnWindowSize": greeter.WithInitialConnWindowSize(1),
		"WithServiceName":           greeter.WithServiceName(""),
		"WithLogger":                greeter.WithLogger(nil),
		"WithMeterProvider":         greeter.WithMeterProvider(nil),
		"WithTracerProvider":        greeter.WithTracerProvider(nil),
		"WithPropagator":            greeter.WithPropagator(nil),
	}
	for name, o := range clients {
		if _, err := greeter.NewClient("127.0.0.1:50051", greeter.WithInsecure(), o); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("NewClient(%s) = %v; want an error naming it", name, err)
		}
	}
}

func TestMethodDeadlinesNamesAMethod(t *testing.T) {
	for _, m := range []string{"SayHelo", "Greeter/SayHello", "/Other/SayHello", ""} {
		if _, err := greeter.NewServer(greeter.WithMethodDeadlines(m, greeter.DeadlinePolicy{Max: time.Second})); err == nil || !strings.Contains(err.Error(), "no such method") {
			t.Errorf("WithMethodDeadlines(%q) = %v; want an error saying there is no such method", m, err)
		}
	}
	for _, m := range []string{"SayHello", "/Greeter/SayHelloAgain", "/helloworld.Greeter/SayHelloBidiStream"} {
		srv, err := greeter.NewServer(greeter.WithMethodDeadlines(m, greeter.DeadlinePolicy{}))
		if err != nil {
			t.Errorf("WithMethodDeadlines(%q) = %v", m, err)
			continue
		}
		stopped, cancel := context.WithCancel(t.Context())
		cancel()
		_ = srv.Shutdown(stopped) // stops the stream workers it started

	}
}
