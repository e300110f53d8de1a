package greeter_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestHeadersAndTrailersBothWays(t *testing.T) {
	binIn := []byte{0, 1, 2, 0xfe, 0xff}
	binOut := []byte{0xff, 0, 'x', 0x80}
	var gotClient, gotBin []string
	srv := newServer(t, greeter.WithUnaryServerInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			gotClient = metadata.ValueFromIncomingContext(ctx, "x-client")
			gotBin = metadata.ValueFromIncomingContext(ctx, "x-blob-bin")
			if err := grpc.SetHeader(ctx, metadata.Pairs("x-server", "header")); err != nil {
				return nil, err
			}
			if err := grpc.SetTrailer(ctx, metadata.Pairs("x-server-trailer", "done", "x-sum-bin", string(binOut))); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}))
	c := newClient(t, srv)
	// Binary values travel base64-encoded under a -bin key; grpc encodes
	// and decodes them, so both ends see raw bytes.
	ctx := metadata.AppendToOutgoingContext(testContext(t), "x-client", "v1", "x-blob-bin", string(binIn))
	var header, trailer metadata.MD
	if _, err := c.SayHello(ctx, "meta", grpc.Header(&header), grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	if len(gotClient) != 1 || gotClient[0] != "v1" {
		t.Errorf("server saw x-client %q, want [v1]", gotClient)
	}
	if len(gotBin) != 1 || !bytes.Equal([]byte(gotBin[0]), binIn) {
		t.Errorf("server saw x-blob-bin %q, want the bytes %q", gotBin, binIn)
	}
	if v := header.Get("x-server"); len(v) != 1 || v[0] != "header" {
		t.Errorf("response header x-server = %q, want [header]", v)
	}
	if v := trailer.Get("x-server-trailer"); len(v) != 1 || v[0] != "done" {
		t.Errorf("trailer x-server-trailer = %q, want [done]", v)
	}
	if v := trailer.Get("x-sum-bin"); len(v) != 1 || !bytes.Equal([]byte(v[0]), binOut) {
		t.Errorf("trailer x-sum-bin = %q, want the bytes %q", v, binOut)
	}
}

func TestRequestID(t *testing.T) {
	var seen []string
	record := func(ctx context.Context) {
		id, ok := greeter.RequestIDFromContext(ctx)
		if !ok {
			id = "<none>"
		}
		seen = append(seen, id)
	}
	srv := newServer(t, greeter.WithRequestID(),
		greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(ctx)
			return h(ctx, req)
		}),
		greeter.WithStreamServerInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(ss.Context())
			return h(srv, ss)
		}))
	c := newClient(t, srv)
	ctx := testContext(t)
	call := func(ctx context.Context) string {
		t.Helper()
		var header metadata.MD
		if _, err := c.SayHello(ctx, "id", grpc.Header(&header)); err != nil {
			t.Fatal(err)
		}
		v := header.Get(greeter.RequestIDHeader)
		if len(v) != 1 {
			t.Fatalf("response header %s = %q, want one id", greeter.RequestIDHeader, v)
		}
		if last := seen[len(seen)-1]; last != v[0] {
			t.Fatalf("server context had id %q, response header %q: want the same", last, v[0])
		}
		return v[0]
	}

	// Taken from the caller.
	if got := call(metadata.AppendToOutgoingContext(ctx, greeter.RequestIDHeader, "req-42")); got != "req-42" {
		t.Fatalf("id = %q, want the caller's req-42", got)
	}
	// Generated, and different each call.
	a, b := call(ctx), call(ctx)
	if a == "" || a == b {
		t.Fatalf("generated ids %q and %q, want two different non-empty ids", a, b)
	}
	// A caller's unusable id is replaced, not echoed.
	long := strings.Repeat("x", 200)
	if got := call(metadata.AppendToOutgoingContext(ctx, greeter.RequestIDHeader, long)); got == long || got == "" {
		t.Fatalf("id for an over-long caller id = %q, want a generated one", got)
	}

	// Streams get one too.
	stream, err := c.SayHelloStreamReply(metadata.AppendToOutgoingContext(ctx, greeter.RequestIDHeader, "stream-7"), "s")
	if err != nil {
		t.Fatal(err)
	}
	header, err := stream.Header()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if v := header.Get(greeter.RequestIDHeader); len(v) != 1 || v[0] != "stream-7" || seen[len(seen)-1] != "stream-7" {
		t.Fatalf("stream: header %q, server saw %q; want stream-7 for both", v, seen[len(seen)-1])
	}
}

func TestRequestIDOnFailureKeepsRetriesWorking(t *testing.T) {
	var seen attempts
	srv := newServer(t, append(seen.serverOptions(), greeter.WithRequestID(), greeter.WithFailFirst(2))...)
	c := newClient(t, srv)
	ctx := metadata.AppendToOutgoingContext(testContext(t), greeter.RequestIDHeader, "retried")
	var header metadata.MD
	if _, err := c.SayHello(ctx, "again", grpc.Header(&header)); err != nil {
		t.Fatalf("SayHello with request ids and 2 injected failures = %v, want success after retries", err)
	}
	if got := len(seen.take()); got != 3 {
		t.Fatalf("server saw %d attempts, want 3", got)
	}
	if v := header.Get(greeter.RequestIDHeader); len(v) != 1 || v[0] != "retried" {
		t.Fatalf("header %s = %q, want [retried]", greeter.RequestIDHeader, v)
	}

	// A failed call carries its id in the trailer.
	var trailer metadata.MD
	if _, err := c.SayHello(ctx, "", grpc.Trailer(&trailer)); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SayHello(\"\") = %v, want InvalidArgument", err)
	}
	if v := trailer.Get(greeter.RequestIDHeader); len(v) != 1 || v[0] != "retried" {
		t.Fatalf("failed call: trailer %s = %q, want [retried]", greeter.RequestIDHeader, v)
	}
}

func TestNoRequestIDByDefault(t *testing.T) {
	var ok bool
	srv := newServer(t, greeter.WithUnaryServerInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			_, ok = greeter.RequestIDFromContext(ctx)
			return h(ctx, req)
		}))
	var header metadata.MD
	if _, err := newClient(t, srv).SayHello(testContext(t), "plain", grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	if ok || len(header.Get(greeter.RequestIDHeader)) != 0 {
		t.Fatalf("request id present without WithRequestID (in context: %v, header: %q)", ok, header.Get(greeter.RequestIDHeader))
	}
}
