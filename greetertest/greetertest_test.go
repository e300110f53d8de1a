package greetertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/greetertest"
	"github.com/grpc-greeter/greeter/internal/testpki"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const defaultTestTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// The one-liner: a real server with server options, and a client of it.
func TestNewClient(t *testing.T) {
	c := greetertest.NewClient(t, greeter.WithStreamReplies(2))
	msg, err := c.SayHello(testContext(t), "tester")
	if err != nil || msg != "Hello, tester!" {
		t.Fatalf("SayHello = %q, %v; want Hello, tester!", msg, err)
	}
	stream, err := c.SayHelloStreamReply(testContext(t), "tester")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := stream.Recv(); err != nil {
			break
		}
		n++
	}
	if n != 2 {
		t.Errorf("stream replies = %d; want the server option's 2", n)
	}
}

// slowGreeter works until its context ends.
type slowGreeter struct {
	greeterpb.UnimplementedGreeterServer
}

func (slowGreeter) SayHello(ctx context.Context, _ *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// Server options on the server, client options on each client.
func TestServerClientWithOptions(t *testing.T) {
	srv := greetertest.NewServer(t, greeter.WithHandler(slowGreeter{}))
	c := srv.Client(t, greeter.WithDefaultTimeout(50*time.Millisecond), greeter.WithServiceName(greeter.HelloworldServiceName))
	_, err := c.SayHello(context.Background(), "you") // no deadline: the client's default applies
	var de *greeter.DeadlineError
	if !errors.As(err, &de) || de.Source != greeter.SourceClientDefault || de.Method != "/helloworld.Greeter/SayHello" {
		t.Fatalf("SayHello = %v; want a DeadlineError from the client default on /helloworld.Greeter/SayHello", err)
	}
}

// The server and its clients are closed when the test that made them ends.
func TestCleanupClosesServerAndClients(t *testing.T) {
	var c *greeter.Client
	var srv *greetertest.Server
	t.Run("inner", func(t *testing.T) {
		srv = greetertest.NewServer(t)
		c = srv.Client(t)
		if _, err := c.SayHello(testContext(t), "you"); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := c.SayHello(testContext(t), "you"); status.Code(err) != codes.Canceled {
		t.Errorf("SayHello after the test ended = %v; want Canceled (client closed)", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
}

// A server given TLS is reached by a client given TLS: Client adds
// plaintext only when the options choose no transport security.
func TestServerClientWithTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "greetertest CA")
	caFile := testpki.Write(t, dir, "ca.pem", ca.PEM)
	cert, key := testpki.WritePair(t, dir, "server", ca.Issue(t, testpki.Localhost()))
	srv := greetertest.NewServer(t, greeter.WithTLSFiles(greeter.TLSFiles{CertFile: cert, KeyFile: key}))
	c := srv.Client(t, greeter.WithTLSFiles(greeter.TLSFiles{CAFile: caFile, ServerName: "localhost"}))
	if msg, err := c.SayHello(testContext(t), "tls"); err != nil || msg != "Hello, tls!" {
		t.Fatalf("SayHello over TLS = %q, %v; want Hello, tls!", msg, err)
	}
	// And a plaintext client of the TLS server is refused, as anywhere.
	if _, err := srv.Client(t).SayHello(testContext(t), "plain"); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext SayHello to a TLS server = %v; want Unavailable", err)
	}
}
