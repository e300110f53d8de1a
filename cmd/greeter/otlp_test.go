package main

import (
	"context"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// otlpReceiver is an OTLP/gRPC trace receiver, as a collector runs one,
// keeping the spans it is sent.
type otlpReceiver struct {
	collectorpb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []*tracepb.Span
	services map[string]bool
}

func (r *otlpReceiver) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				r.services[a.GetValue().GetStringValue()] = true
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// startReceiver serves an otlpReceiver on 127.0.0.1 and returns its URL.
func startReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{services: map[string]bool{}}
	s := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(s, r)
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-served; err != nil {
			t.Errorf("receiver: %v", err)
		}
	})
	return r, "http://" + lis.Addr().String()
}

// TestServeExportsOneTraceAcrossRelay runs a backend and a relay in front
// of it, both exporting traces over OTLP, and finds a call through the
// relay as one trace: the relay's server span, its call and attempt to the
// backend, the backend's server span, each the child of the one before.
func TestServeExportsOneTraceAcrossRelay(t *testing.T) {
	recv, endpoint := startReceiver(t)
	backend, stopBackend, _ := startServe(t, "--otlp-endpoint", endpoint)
	relay, stopRelay, _ := startServe(t, "--otlp-endpoint", endpoint, "--upstream", backend)
	if code, out, errOut := runCmd("call", "--addr", relay, "--name", "trace"); code != 0 || out != "Hello, trace!\n" {
		t.Fatalf("call through the relay = %d, %q, %q", code, out, errOut)
	}
	// A server exports what it has left when it stops.
	if stopRelay() != 0 || stopBackend() != 0 {
		t.Fatal("serve did not stop cleanly")
	}

	recv.mu.Lock()
	defer recv.mu.Unlock()
	if !recv.services["greeter"] {
		t.Errorf("service.name of the spans = %v; want greeter", recv.services)
	}
	byParent := map[string]*tracepb.Span{}
	var root *tracepb.Span
	for _, s := range recv.spans {
		if len(s.GetParentSpanId()) == 0 {
			root = s
			continue
		}
		byParent[hex.EncodeToString(s.GetParentSpanId())] = s
	}
	want := []string{"Recv.Greeter.SayHello", "Sent.Greeter.SayHello", "Attempt.Greeter.SayHello", "Recv.Greeter.SayHello"}
	if root == nil || len(recv.spans) != len(want) {
		t.Fatalf("received %d spans, root %v; want %d in one chain", len(recv.spans), root.GetName(), len(want))
	}
	var tree []string
	for s, depth := root, 0; s != nil; s, depth = byParent[hex.EncodeToString(s.GetSpanId())], depth+1 {
		line := strings.Repeat("  ", depth) + s.GetName()
		for _, a := range s.GetAttributes() {
			if strings.HasPrefix(a.GetKey(), "greeter.budget") {
				v := a.GetValue().GetStringValue()
				if v == "" {
					v = strconv.FormatInt(a.GetValue().GetIntValue(), 10)
				}
				line += " " + a.GetKey() + "=" + v
			}
		}
		tree = append(tree, line)
		if depth >= len(want) || s.GetName() != want[depth] {
			t.Fatalf("span %d = %s; want %s", depth, s.GetName(), want[min(depth, len(want)-1)])
		}
		if string(s.GetTraceId()) != string(root.GetTraceId()) {
			t.Errorf("span %s is in another trace", s.GetName())
		}
	}
	if len(tree) != len(want) {
		t.Fatalf("chain of %d spans:\n%s\nwant %d", len(tree), strings.Join(tree, "\n"), len(want))
	}
	t.Logf("trace %s:\n%s", hex.EncodeToString(root.GetTraceId()), strings.Join(tree, "\n"))
}

// TestServeExportsToEnvEndpoint checks that the standard OTEL_EXPORTER_OTLP_*
// variables turn on the export without --otlp-endpoint, and
// OTEL_SERVICE_NAME names the service.
func TestServeExportsToEnvEndpoint(t *testing.T) {
	recv, endpoint := startReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_SERVICE_NAME", "greeter-eu")
	addr, stop, _ := startServe(t)
	if code, _, errOut := runCmd("call", "--addr", addr); code != 0 {
		t.Fatalf("call: exit %d: %s", code, errOut)
	}
	if stop() != 0 {
		t.Fatal("serve did not stop cleanly")
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.spans) != 1 || recv.spans[0].GetName() != "Recv.Greeter.SayHello" || !recv.services["greeter-eu"] {
		t.Fatalf("received %d spans (%v), services %v; want Recv.Greeter.SayHello from greeter-eu", len(recv.spans), recv.spans, recv.services)
	}
}
