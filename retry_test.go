package greeter_test

import (
	"slices"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRetrySucceedsAfterFailFirst(t *testing.T) {
	var seen attempts
	srv := newServer(t, append(seen.serverOptions(), greeter.WithFailFirst(2))...)
	c := newClient(t, srv) // DefaultServiceConfig: retry on UNAVAILABLE
	ctx := testContext(t)

	got, err := c.SayHello(ctx, "retry")
	if err != nil || got != "Hello, retry!" {
		t.Fatalf("SayHello = %q, %v; want success after retries", got, err)
	}
	if got, want := seen.take(), []string{"", "1", "2"}; !slices.Equal(got, want) {
		t.Fatalf("server saw attempts with grpc-previous-rpc-attempts %q, want %q (N+1 attempts)", got, want)
	}

	// A server stream is retried too, as no response has arrived yet.
	stream, err := c.SayHelloStreamReply(ctx, "stream")
	if err != nil {
		t.Fatalf("SayHelloStreamReply: %v", err)
	}
	if n := len(recvAll(t, stream)); n != greeter.DefaultStreamReplies {
		t.Fatalf("got %d replies, want %d", n, greeter.DefaultStreamReplies)
	}
	if got := seen.take(); len(got) != 3 {
		t.Fatalf("stream: server saw %d attempts, want 3", len(got))
	}
}

// TestPerAttemptRetriesSayWhichAttempt checks that WithPerAttemptTimeout's
// own attempts, which replace grpc's retries, carry the same header, so a
// server can tell a retry from a new call.
func TestPerAttemptRetriesSayWhichAttempt(t *testing.T) {
	var seen attempts
	srv := newServer(t, append(seen.serverOptions(), greeter.WithFailFirst(2))...)
	c := newClient(t, srv, greeter.WithPerAttemptTimeout(time.Second, 3))
	got, err := c.SayHello(testContext(t), "retry")
	if err != nil || got != "Hello, retry!" {
		t.Fatalf("SayHello = %q, %v; want success on the third attempt", got, err)
	}
	if got, want := seen.take(), []string{"", "1", "2"}; !slices.Equal(got, want) {
		t.Fatalf("server saw attempts with grpc-previous-rpc-attempts %q, want %q", got, want)
	}
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	var seen attempts
	srv := newServer(t, append(seen.serverOptions(), greeter.WithFailFirst(10))...)
	c := newClient(t, srv)
	_, err := c.SayHello(testContext(t), "doomed")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("SayHello = %v, want Unavailable", err)
	}
	if got := seen.take(); len(got) != 4 {
		t.Fatalf("server saw %d attempts, want DefaultServiceConfig's maxAttempts 4", len(got))
	}
}

func TestNonRetryableCodesAreNotRetried(t *testing.T) {
	var seen attempts
	srv := newServer(t, seen.serverOptions()...)
	c := newClient(t, srv)
	_, err := c.SayHello(testContext(t), "") // InvalidArgument
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SayHello(\"\") = %v, want InvalidArgument", err)
	}
	if got := seen.take(); len(got) != 1 {
		t.Fatalf("server saw %d attempts of an InvalidArgument call, want 1", len(got))
	}
}

func TestNoRetryWithoutServiceConfig(t *testing.T) {
	var seen attempts
	srv := newServer(t, append(seen.serverOptions(), greeter.WithFailFirst(1))...)
	c := newClient(t, srv, greeter.WithServiceConfig(""))
	if _, err := c.SayHello(testContext(t), "once"); status.Code(err) != codes.Unavailable {
		t.Fatalf("SayHello = %v, want Unavailable: no retry policy", err)
	}
	if got := seen.take(); len(got) != 1 {
		t.Fatalf("server saw %d attempts, want 1", len(got))
	}
}

func TestRetryThrottling(t *testing.T) {
	// DefaultServiceConfig's throttle has 10 tokens and stops retrying at 5
	// or fewer; each UNAVAILABLE attempt takes one. The first call fails 4
	// attempts (10 -> 6 tokens); the next call's first failure leaves 5, so
	// it and every call after it get no retry at all.
	var seen attempts
	srv := newServer(t, append(seen.serverOptions(), greeter.WithFailFirst(1000))...)
	c := newClient(t, srv)
	ctx := testContext(t)
	for i, want := range []int{4, 1, 1} {
		if _, err := c.SayHello(ctx, "down"); status.Code(err) != codes.Unavailable {
			t.Fatalf("call %d = %v, want Unavailable", i, err)
		}
		if got := len(seen.take()); got != want {
			t.Fatalf("call %d: server saw %d attempts, want %d", i, got, want)
		}
	}
}

func TestFailFirstValidates(t *testing.T) {
	if _, err := greeter.NewServer(greeter.WithFailFirst(-1)); err == nil {
		t.Fatal("NewServer(WithFailFirst(-1)) succeeded, want an error")
	}
}
