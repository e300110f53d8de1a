package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// silentAddr listens on 127.0.0.1 and accepts connections but never
// answers, until the test ends: a connection to it never gets ready.
func silentAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return lis.Addr().String()
}

// slowHealth is a health service whose Check answers only when its caller
// gives up.
type slowHealth struct {
	healthpb.UnimplementedHealthServer
}

func (slowHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// grpcAddr serves a plain grpc server with the services that register adds,
// on 127.0.0.1, until the test ends.
func grpcAddr(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	srv := grpc.NewServer()
	register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// TestHealthExitCodes checks that greeter health exits with
// grpc-health-probe's codes: 0 SERVING, 1 bad flags, 2 no connection, 3
// the check failed, 4 not SERVING.
func TestHealthExitCodes(t *testing.T) {
	checkLeaks(t)
	serving, _, _ := startServe(t)
	srv, notServing := serveInProcess(t)
	srv.Health().SetServingStatus("Greeter", healthpb.HealthCheckResponse_NOT_SERVING)
	noHealth := grpcAddr(t, func(*grpc.Server) {})
	slow := grpcAddr(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, slowHealth{}) })

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		{"server SERVING", []string{"--addr", serving}, 0, "SERVING\n", nil},
		{"Greeter SERVING", []string{"--addr", serving, "--service", "Greeter"}, 0, "SERVING\n", nil},
		{"bad flag", []string{"--nope"}, 1, "", []string{"-nope"}},
		{"duration without unit", []string{"--timeout", "5"}, 1, "", []string{"--timeout 5: use a unit"}},
		{"zero timeout", []string{"--timeout", "0s"}, 1, "", []string{"--timeout 0s: must be positive"}},
		{"negative timeout", []string{"--timeout", "-1s"}, 1, "", []string{"--timeout -1s: must not be negative"}},
		{"extra argument", []string{"extra"}, 1, "", []string{"unexpected arguments"}},
		{"nothing listening", []string{"--addr", deadAddr(t)}, 2, "", []string{"no connection to 127.0.0.1:", "connection refused"}},
		{"no answer", []string{"--addr", silentAddr(t), "--timeout", "300ms"}, 2, "", []string{"no connection to 127.0.0.1:", "not connected within --timeout 300ms"}},
		{"unknown service", []string{"--addr", serving, "--service", "no.such.Service"}, 3, "", []string{"NotFound: "}},
		{"no health service", []string{"--addr", noHealth}, 3, "", []string{"Unimplemented: ", "grpc.health.v1.Health"}},
		{"check too slow", []string{"--addr", slow, "--timeout", "300ms"}, 3, "", []string{"DeadlineExceeded: "}},
		{"NOT_SERVING", []string{"--addr", notServing, "--service", "Greeter"}, 4, "NOT_SERVING\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(append([]string{"health"}, tt.args...)...)
			if code != tt.wantCode || out != tt.wantStdout {
				t.Errorf("greeter health %v: exit %d, stdout %q, stderr %q; want %d, %q", tt.args, code, out, errOut, tt.wantCode, tt.wantStdout)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(errOut, want) {
					t.Errorf("greeter health %v: stderr %q; want it to say %q", tt.args, errOut, want)
				}
			}
		})
	}
}

func TestHealthHelpListsExitCodes(t *testing.T) {
	code, _, errOut := runCmd("health", "--help")
	if code != 0 {
		t.Errorf("greeter health --help exited %d, want 0", code)
	}
	for _, want := range []string{"Exit codes", "grpc-health-probe", "0  SERVING", "1  bad flags", "2  no connection", "3  connected, but the check failed", "4  the server answered"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("greeter health --help lacks %q:\n%s", want, errOut)
		}
	}
}
