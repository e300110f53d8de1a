package greeter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestInvalidServiceConfigFailsAtNewClient(t *testing.T) {
	tests := []struct{ name, json, want string }{
		{"not JSON", `{"methodConfig": [`, "service config"},
		{"retry without attempts", `{"methodConfig": [{"name": [{"service": "Greeter"}], "retryPolicy": {"maxAttempts": 1, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`, "invalid retry policy"},
		{"unknown balancer", `{"loadBalancingConfig": [{"no_such_policy": {}}]}`, "no_such_policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := greeter.NewClient("localhost:1", greeter.WithInsecure(), greeter.WithServiceConfig(tt.json))
			if err == nil {
				c.Close()
				t.Fatal("NewClient succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient error %q does not say what is wrong (want it to mention %q)", err, tt.want)
			}
		})
	}
}

func TestDefaultServiceConfigIsValid(t *testing.T) {
	c, err := greeter.NewClient("localhost:1", greeter.WithInsecure(), greeter.WithServiceConfig(greeter.DefaultServiceConfig))
	if err != nil {
		t.Fatalf("NewClient(DefaultServiceConfig): %v", err)
	}
	c.Close()
	hc, err := greeter.ServiceConfigWithHealthCheck("", greeter.ServiceName)
	if err != nil {
		t.Fatal(err)
	}
	c, err = greeter.NewClient("localhost:1", greeter.WithInsecure(), greeter.WithServiceConfig(hc))
	if err != nil {
		t.Fatalf("NewClient(ServiceConfigWithHealthCheck): %v", err)
	}
	c.Close()
	if _, err := greeter.ServiceConfigWithHealthCheck("[1]", greeter.ServiceName); err == nil {
		t.Fatal("ServiceConfigWithHealthCheck accepted a config that is not an object")
	}
}

func TestServiceConfigTimeout(t *testing.T) {
	srv := newServer(t, greeter.WithUnaryServerInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}))
	c := newClient(t, srv, greeter.WithServiceConfig(`{"methodConfig": [{"name": [{"service": "Greeter"}], "timeout": "0.2s"}]}`))
	start := time.Now()
	_, err := c.SayHello(testContext(t), "slow") // the context allows 10s
	elapsed := time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("SayHello = %v, want DeadlineExceeded from the service config's timeout", err)
	}
	if elapsed < 190*time.Millisecond || elapsed > 200*time.Millisecond+time.Second {
		t.Fatalf("call took %v, want about 200ms", elapsed)
	}
}
