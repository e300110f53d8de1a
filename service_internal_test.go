package greeter

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc"
)

// bindUnary and bindStream have no exported way in: the service's own
// interceptors come from serviceUnaryInterceptors. These tests pin what the
// service's policies rely on: order, the method's info, and the handler's
// result coming back out.

func TestBindUnaryOrder(t *testing.T) {
	var got []string
	mk := func(name string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			got = append(got, name+">"+info.FullMethod)
			resp, err := h(ctx, req)
			got = append(got, "<"+name)
			return resp, err
		}
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/Greeter/SayHello"}
	h := bindUnary([]grpc.UnaryServerInterceptor{mk("a"), mk("b")}, info, func(_ context.Context, req any) (any, error) {
		got = append(got, "handler")
		return req.(string) + "!", nil
	})
	for range 2 { // bound once, called many times
		got = nil
		resp, err := h(context.Background(), "hi")
		if resp != "hi!" || err != nil {
			t.Fatalf("h = %v, %v; want hi!, nil", resp, err)
		}
		want := []string{"a>/Greeter/SayHello", "b>/Greeter/SayHello", "handler", "<b", "<a"}
		if !slices.Equal(got, want) {
			t.Fatalf("calls = %v, want %v", got, want)
		}
	}
}

func TestBindStreamOrder(t *testing.T) {
	var got []string
	mk := func(name string) grpc.StreamServerInterceptor {
		return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			got = append(got, name+">"+info.FullMethod)
			return h(srv, ss)
		}
	}
	info := &grpc.StreamServerInfo{FullMethod: "/Greeter/SayHelloBidiStream"}
	h := bindStream([]grpc.StreamServerInterceptor{mk("a"), mk("b")}, info, func(any, grpc.ServerStream) error {
		got = append(got, "handler")
		return nil
	})
	if err := h(nil, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"a>/Greeter/SayHelloBidiStream", "b>/Greeter/SayHelloBidiStream", "handler"}
	if !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}
