// Package greetertest runs a real [greeter.Server] in process over
// [bufconn], for tests: no port, no sleep, nothing left behind. It is to
// greeter what net/http/httptest is to net/http.
//
// In a test, one call gives a ready client, closed with its server by
// t.Cleanup:
//
//	c := greetertest.NewClient(t, greeter.WithStreamReplies(5))
//	msg, err := c.SayHello(ctx, "you")
//
// For client options, or several clients on one server, start the server
// with [NewServer] and make clients with [Server.Client]:
//
//	srv := greetertest.NewServer(t, greeter.WithHandler(myGreeter{}))
//	c := srv.Client(t, greeter.WithPerAttemptTimeout(100*time.Millisecond, 3))
package greetertest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"
)

// bufSize is the in-memory pipe's buffer per connection; gRPC's flow control
// bounds what is in flight, so a modest buffer loses nothing.
const bufSize = 1 << 20

// Server is a greeter server listening on an in-memory bufconn listener.
type Server struct {
	// Server is the greeter server being served.
	Server *greeter.Server

	lis     *bufconn.Listener
	served  chan error
	mu      sync.Mutex
	clients []*greeter.Client
	closed  bool
}

// NewServer starts a greeter server built with opts on a new bufconn
// listener and closes it, with the clients made by [Server.Client], when
// the test ends (tb.Cleanup). Invalid options end the test with tb.Fatal.
func NewServer(tb testing.TB, opts ...greeter.ServerOption) *Server {
	tb.Helper()
	srv, err := greeter.NewServer(opts...)
	if err != nil {
		tb.Fatalf("greetertest: %v", err)
	}
	s := &Server{Server: srv, lis: bufconn.Listen(bufSize), served: make(chan error, 1)}
	go func() { s.served <- srv.Serve(s.lis) }()
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("greetertest: Close: %v", err)
		}
	})
	return s
}

// Client returns a new client connected to s over bufconn, configured by
// opts: plaintext unless opts choose transport security (greeter.WithTLS or
// greeter.WithTLSFiles, for a server given the same). The client is closed
// with s; invalid options end the test with tb.Fatal.
func (s *Server) Client(tb testing.TB, opts ...greeter.ClientOption) *greeter.Client {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		tb.Fatal("greetertest: Client called after Close")
	}
	// The passthrough scheme hands "bufnet" to the dialer as is, with no DNS
	// lookup and no change to grpc's global default scheme.
	dial := greeter.WithDialOptions(grpc.WithContextDialer(s.Dial))
	c, err := greeter.NewClient("passthrough:///bufnet", append([]greeter.ClientOption{dial}, opts...)...)
	if err != nil {
		// No transport security chosen (or another mistake, which the
		// second try reports): plaintext, as over any bufconn.
		c, err = greeter.NewClient("passthrough:///bufnet", append([]greeter.ClientOption{dial, greeter.WithInsecure()}, opts...)...)
	}
	if err != nil {
		tb.Fatalf("greetertest: %v", err)
	}
	s.clients = append(s.clients, c)
	return c
}

// Dial opens a new in-memory connection to s, for use with
// grpc.WithContextDialer when a test builds its own grpc.ClientConn.
func (s *Server) Dial(ctx context.Context, _ string) (net.Conn, error) {
	return s.lis.DialContext(ctx)
}

// Close closes the clients made by [Server.Client], stops the server at once
// (in-flight calls are cancelled) and waits for it to finish serving. The
// test's cleanup calls it; calling it earlier, to test what a stopped server
// does, is fine, and later calls do nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	clients := s.clients
	s.mu.Unlock()

	for _, c := range clients {
		// Close fails only on a client the test already closed itself.
		_ = c.Close()
	}
	var errs []error
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // an expired context makes Shutdown stop hard
	if err := s.Server.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, err)
	}
	errs = append(errs, <-s.served)
	return errors.Join(errs...)
}

// NewClient starts a server built with opts, as [NewServer] does, and returns
// a client connected to it. Both are closed by tb.Cleanup.
func NewClient(tb testing.TB, opts ...greeter.ServerOption) *greeter.Client {
	tb.Helper()
	return NewServer(tb, opts...).Client(tb)
}
