package greeter_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/testpki"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/local"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// testRefresh is how often the tests' servers and clients re-read their
// files: short, so that a rotation shows within the test's deadline.
const testRefresh = 20 * time.Millisecond

// pki is a test's certificate authority, a second one no server trusts,
// and the server's certificate, in a temp dir.
type pki struct {
	dir              string
	ca, other        *testpki.CA
	caFile           string
	serverCert       *testpki.Cert
	certFile, keyFil string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: testpki.NewCA(t, "greeter test CA"), other: testpki.NewCA(t, "another CA")}
	p.caFile = testpki.Write(t, p.dir, "ca.pem", p.ca.PEM)
	p.serverCert = p.ca.Issue(t, testpki.Localhost())
	p.certFile, p.keyFil = testpki.WritePair(t, p.dir, "server", p.serverCert)
	return p
}

// clientFiles writes a client certificate issued by ca for l and returns
// the TLSFiles of a client presenting it and trusting p's CA.
func (p *pki) clientFiles(t *testing.T, name string, ca *testpki.CA, l testpki.Leaf) greeter.TLSFiles {
	t.Helper()
	cert, key := testpki.WritePair(t, p.dir, name, ca.Issue(t, l))
	return greeter.TLSFiles{CertFile: cert, KeyFile: key, CAFile: p.caFile}
}

// serverFiles are the server's TLSFiles, with mTLS when mutual.
func (p *pki) serverFiles(mutual bool) greeter.TLSFiles {
	f := greeter.TLSFiles{CertFile: p.certFile, KeyFile: p.keyFil, Refresh: testRefresh}
	if mutual {
		f.CAFile = p.caFile
	}
	return f
}

// dial returns a client of addr, closed at the end of the test.
func dial(t *testing.T, addr string, opts ...greeter.ClientOption) *greeter.Client {
	t.Helper()
	c, err := greeter.NewClient(addr, opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// whoGreeter greets with the caller's identity: "Hello, NAME (ID)!".
type whoGreeter struct{ stubGreeter }

func (whoGreeter) SayHello(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return &greeterpb.HelloReply{Message: "Hello, " + req.GetName() + " (" + greeter.PeerIdentity(ctx) + ")!"}, nil
}

func (whoGreeter) SayHelloAgain(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if req.GetName() == "panic" {
		panic("boom")
	}
	return &greeterpb.HelloReply{Message: "Hello again, " + req.GetName() + " (" + greeter.PeerIdentity(ctx) + ")!"}, nil
}

// String returns what was written (syncBuffer is in observability_test.go).
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func wantCode(t *testing.T, what string, err error, code codes.Code, msgPart string) {
	t.Helper()
	if got := status.Code(err); got != code || !strings.Contains(status.Convert(err).Message(), msgPart) {
		t.Errorf("%s: %v; want %v with %q in the message", what, err, code, msgPart)
	}
}

// TestMTLSIdentity: with a client CA the server asks every client for a
// certificate from it; the identity the certificate names reaches the
// handler (PeerIdentity) and the server's log lines; every other client is
// refused before any call.
func TestMTLSIdentity(t *testing.T) {
	p := newPKI(t)
	var logs syncBuffer
	_, addr := startTCPGreeter(t, greeter.WithTLSFiles(p.serverFiles(true)), greeter.WithHandler(whoGreeter{}),
		greeter.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))

	ok := []struct {
		name string
		leaf testpki.Leaf
		want string
	}{
		{"URI SAN", testpki.Leaf{CommonName: "admin", DNSNames: []string{"admin.greeter.test"}, URIs: []string{"spiffe://greeter.test/admin"}}, "spiffe://greeter.test/admin"},
		{"DNS SAN", testpki.Leaf{CommonName: "guest", DNSNames: []string{"guest.greeter.test"}}, "guest.greeter.test"},
		{"subject", testpki.Leaf{CommonName: "plain", Organization: "greeter"}, "CN=plain,O=greeter"},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr, greeter.WithTLSFiles(p.clientFiles(t, strings.ReplaceAll(tt.name, " ", "-"), p.ca, tt.leaf)))
			msg, err := c.SayHello(testContext(t), "you")
			if want := "Hello, you (" + tt.want + ")!"; err != nil || msg != want {
				t.Fatalf("SayHello = %q, %v; want %q", msg, err, want)
			}
		})
	}
	// A log line about a call names its caller.
	c := dial(t, addr, greeter.WithTLSFiles(p.clientFiles(t, "logged", p.ca, testpki.Leaf{URIs: []string{"spiffe://greeter.test/logged"}})))
	_, err := c.SayHelloAgain(testContext(t), "panic")
	wantCode(t, "a handler that panics", err, codes.Internal, "")
	if l := logs.String(); !strings.Contains(l, "recovered from panic") || !strings.Contains(l, "greeter.peer_identity=spiffe://greeter.test/logged") {
		t.Errorf("the server's log does not name the caller of the call that panicked:\n%s", l)
	}

	refused := []struct {
		name  string
		files greeter.TLSFiles
		hint  string
	}{
		{"no certificate", greeter.TLSFiles{CAFile: p.caFile}, "the server refused the client certificate: remote error: tls: certificate required"},
		{"certificate from another CA", p.clientFiles(t, "other", p.other, testpki.Leaf{URIs: []string{"spiffe://greeter.test/admin"}}), "the server refused the client certificate: remote error: tls: unknown certificate authority"},
		{"expired certificate", p.clientFiles(t, "expired", p.ca, testpki.Leaf{URIs: []string{"spiffe://greeter.test/admin"}, Expired: true}), "the server refused the client certificate: remote error: tls: "},
	}
	// The same over WithTLS, with a certificate of the importer's own.
	admin := p.ca.Issue(t, testpki.Leaf{URIs: []string{"spiffe://greeter.test/tls-config"}})
	msg, err := dial(t, addr, greeter.WithTLS(&tls.Config{RootCAs: p.ca.Pool(), Certificates: []tls.Certificate{admin.TLS}})).SayHello(testContext(t), "you")
	if want := "Hello, you (spiffe://greeter.test/tls-config)!"; err != nil || msg != want {
		t.Errorf("SayHello over WithTLS with a client certificate = %q, %v; want %q", msg, err, want)
	}
	refused = append(refused, struct {
		name  string
		files greeter.TLSFiles
		hint  string
	}{"WithTLS without a certificate", greeter.TLSFiles{}, "the server refused the client certificate: remote error: tls: certificate required"})
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			opt := greeter.WithTLSFiles(tt.files)
			if tt.files == (greeter.TLSFiles{}) {
				opt = greeter.WithTLS(&tls.Config{RootCAs: p.ca.Pool()})
			}
			_, err := dial(t, addr, opt).SayHello(testContext(t), "you")
			wantCode(t, "SayHello", err, codes.Unavailable, tt.hint)
		})
	}
}

// TestTLSRefusals: a client refuses a server whose certificate is from a
// CA it does not trust, has expired or names another host, and says why.
func TestTLSRefusals(t *testing.T) {
	p := newPKI(t)
	for _, tt := range []struct {
		name string
		leaf testpki.Leaf
		ca   *testpki.CA
		want string
	}{
		{"wrong CA", testpki.Localhost(), p.other, "certificate signed by unknown authority"},
		{"expired", func() testpki.Leaf { l := testpki.Localhost(); l.Expired = true; return l }(), p.ca, "the server must renew it"},
		{"wrong SAN", testpki.Leaf{CommonName: "elsewhere", DNSNames: []string{"elsewhere.test"}}, p.ca, "does not name this address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cert, key := testpki.WritePair(t, t.TempDir(), "server", tt.ca.Issue(t, tt.leaf))
			_, addr := startTCPGreeter(t, greeter.WithTLSFiles(greeter.TLSFiles{CertFile: cert, KeyFile: key}))
			c := dial(t, addr, greeter.WithTLSFiles(greeter.TLSFiles{CAFile: p.caFile}))
			_, err := c.SayHello(testContext(t), "you")
			wantCode(t, "SayHello", err, codes.Unavailable, tt.want)
		})
	}
}

// serial returns the serial number of the certificate the server
// presented on the connection of a call.
func serial(p *peer.Peer) string {
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return ""
	}
	return info.State.PeerCertificates[0].SerialNumber.String()
}

// poll runs f every few milliseconds until it reports true, and fails the
// test when ctx ends first. It waits for files re-read on a timer, which
// nothing announces.
func poll(t *testing.T, ctx context.Context, what string, f func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !f() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not seen before the test's deadline", what)
		case <-tick.C:
		}
	}
}

// TestTLSRotation: the server's certificate and key are replaced while a
// client keeps calling on its connection; new connections soon get the
// new certificate, and no call fails.
func TestTLSRotation(t *testing.T) {
	p := newPKI(t)
	_, addr := startTCPGreeter(t, greeter.WithTLSFiles(p.serverFiles(false)))
	ctx := testContext(t)
	client := greeter.WithTLSFiles(greeter.TLSFiles{CAFile: p.caFile})

	steady := dial(t, addr, client)
	stop := make(chan struct{})
	done := make(chan error, 1)
	var calls int
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := steady.SayHello(ctx, "steady"); err != nil {
				done <- err
				return
			}
			calls++
		}
	}()

	handshake := func() string {
		c := dial(t, addr, client)
		defer c.Close()
		var pr peer.Peer
		if _, err := c.SayHello(ctx, "new", grpc.Peer(&pr)); err != nil {
			t.Fatalf("SayHello on a new connection: %v", err)
		}
		return serial(&pr)
	}
	if got := handshake(); got != p.serverCert.Serial() {
		t.Fatalf("the server presented serial %s, want %s", got, p.serverCert.Serial())
	}
	renewed := p.ca.Issue(t, testpki.Localhost())
	testpki.WritePair(t, p.dir, "server", renewed)
	poll(t, ctx, "the renewed certificate on a new connection", func() bool { return handshake() == renewed.Serial() })
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("a call on the established connection failed during the rotation (after %d calls): %v", calls, err)
	}
}

// TestCARotation: the CA bundles are re-read too. The server's client CA
// file gains a second CA, whose clients are then let in; a client's CA
// file gains the CA of a server it refused, which it then reaches.
func TestCARotation(t *testing.T) {
	p := newPKI(t)
	ctx := testContext(t)
	_, addr := startTCPGreeter(t, greeter.WithTLSFiles(p.serverFiles(true)))
	fastRetry := greeter.WithDialOptions(grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.2, MaxDelay: 50 * time.Millisecond}, MinConnectTimeout: time.Second}))

	newcomer := p.clientFiles(t, "newcomer", p.other, testpki.Leaf{URIs: []string{"spiffe://other.test/newcomer"}})
	c := dial(t, addr, greeter.WithTLSFiles(newcomer), fastRetry)
	_, err := c.SayHello(ctx, "you")
	wantCode(t, "a client of a CA the server does not trust yet", err, codes.Unavailable, "")
	testpki.Write(t, p.dir, "ca.pem", p.ca.PEM, p.other.PEM)
	poll(t, ctx, "the server trusting the new client CA", func() bool {
		_, err := c.SayHello(ctx, "you")
		return err == nil
	})

	// A server whose certificate comes from the other CA, and a client
	// that trusts only the first.
	cert, key := testpki.WritePair(t, t.TempDir(), "server", p.other.Issue(t, testpki.Localhost()))
	_, addr2 := startTCPGreeter(t, greeter.WithTLSFiles(greeter.TLSFiles{CertFile: cert, KeyFile: key}))
	roots := testpki.Write(t, t.TempDir(), "roots.pem", p.ca.PEM)
	c2 := dial(t, addr2, greeter.WithTLSFiles(greeter.TLSFiles{CAFile: roots, Refresh: testRefresh}), fastRetry)
	_, err = c2.SayHello(ctx, "you")
	wantCode(t, "a server from a CA the client does not trust yet", err, codes.Unavailable, "unknown authority")
	testpki.Write(t, filepath.Dir(roots), "roots.pem", p.ca.PEM, p.other.PEM)
	poll(t, ctx, "the client trusting the new server CA", func() bool {
		_, err := c2.SayHello(ctx, "you")
		return err == nil
	})
}

// TestTokens: a server that checks bearer tokens; health checks need none.
func TestTokens(t *testing.T) {
	p := newPKI(t)
	tokens, err := greeter.StaticTokens(map[string]string{"alice": "alice-s3cret", "bob": "bob-s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startTCPGreeter(t, greeter.WithTLSFiles(p.serverFiles(false)), greeter.WithHandler(whoGreeter{}),
		greeter.WithTokenValidator(func(ctx context.Context, tok string) (string, error) {
			if tok == "carol-revoked" {
				return "", status.Error(codes.PermissionDenied, "carol's token is revoked: ask for a new one")
			}
			return tokens(ctx, tok)
		}))
	trust := greeter.WithTLSFiles(greeter.TLSFiles{CAFile: p.caFile})
	ctx := testContext(t)

	msg, err := dial(t, addr, trust, greeter.WithBearerToken("alice-s3cret")).SayHello(ctx, "you")
	if err != nil || msg != "Hello, you (alice)!" {
		t.Fatalf("SayHello with alice's token = %q, %v; want Hello, you (alice)!", msg, err)
	}
	_, err = dial(t, addr, trust).SayHello(ctx, "you")
	wantCode(t, "no token", err, codes.Unauthenticated, "missing bearer token")
	_, err = dial(t, addr, trust, greeter.WithBearerToken("alice-s3creT")).SayHello(ctx, "you")
	wantCode(t, "a wrong token", err, codes.Unauthenticated, "invalid bearer token")
	if strings.Contains(err.Error(), "s3cre") {
		t.Errorf("the refusal repeats the token: %v", err)
	}
	_, err = dial(t, addr, trust, greeter.WithBearerToken("carol-revoked")).SayHello(ctx, "you")
	wantCode(t, "a token the validator refuses with a status", err, codes.PermissionDenied, "ask for a new one")
	for _, h := range []string{"Basic YWxpY2U6cHc=", "Bearer"} {
		mctx := metadata.AppendToOutgoingContext(ctx, "authorization", h)
		_, err = dial(t, addr, trust).SayHello(mctx, "you")
		wantCode(t, "authorization: "+h, err, codes.Unauthenticated, "malformed authorization header")
	}
	hc := dial(t, addr, trust)
	if resp, err := healthpb.NewHealthClient(hc.Conn()).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("a health check without a token = %v, %v; want SERVING", resp, err)
	}
}

// TestTokenNeverInPlaintext: a client refuses to be built with a token
// over plaintext, and a connection that is not encrypted (local
// credentials over TCP) never carries it.
func TestTokenNeverInPlaintext(t *testing.T) {
	if _, err := greeter.NewClient("localhost:50051", greeter.WithInsecure(), greeter.WithBearerToken("tok")); err == nil || !strings.Contains(err.Error(), "never sent over plaintext") {
		t.Errorf("NewClient(WithInsecure, WithBearerToken) = %v; want an error saying the token is never sent over plaintext", err)
	}
	seen := make(chan []string, 10)
	_, addr := startTCPGreeter(t, greeter.WithGRPCServerOptions(grpc.Creds(local.NewCredentials())),
		greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			seen <- metadata.ValueFromIncomingContext(ctx, "authorization")
			return h(ctx, req)
		}))
	c := dial(t, addr, greeter.WithDialOptions(grpc.WithTransportCredentials(local.NewCredentials())), greeter.WithBearerToken("tok"))
	_, err := c.SayHello(testContext(t), "you")
	// grpc refuses the connection itself: the token would go in the clear.
	wantCode(t, "SayHello with a token over an unencrypted connection", err, codes.Unavailable, "only sent over TLS")
	// The call never reached the server's handler chain.
	c2 := dial(t, addr, greeter.WithDialOptions(grpc.WithTransportCredentials(local.NewCredentials())))
	if _, err := c2.SayHello(testContext(t), "you"); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; len(got) != 0 {
		t.Errorf("the server saw authorization %q", got)
	}
	if len(seen) != 0 {
		t.Errorf("the call with the token reached the server")
	}
}

const testPolicy = `{
  "name": "greeter",
  "allow_rules": [
    {"name": "hello-for-all", "request": {"paths": ["/Greeter/SayHello", "/grpc.health.v1.Health/*"]}},
    {"name": "again-for-admin", "source": {"principals": ["spiffe://greeter.test/admin"]}, "request": {"paths": ["/Greeter/SayHelloAgain"]}},
    {"name": "again-for-admin-token", "request": {"paths": ["/Greeter/SayHelloAgain"], "headers": [{"key": "x-greeter-identity", "values": ["admin"]}]}}
  ]
}`

// TestAuthzPolicy: grpc's authz policy, from a file that is watched, over
// mTLS identities and tokens.
func TestAuthzPolicy(t *testing.T) {
	p := newPKI(t)
	policyFile := testpki.Write(t, p.dir, "policy.json", []byte(testPolicy))
	tokens, err := greeter.StaticTokens(map[string]string{"admin": "admin-token", "guest": "guest-token"})
	if err != nil {
		t.Fatal(err)
	}
	loaded := make(chan struct{}, 10)
	logger := slog.New(notifyHandler{slog.DiscardHandler, "authorization policy loaded", loaded})
	_, addr := startTCPGreeter(t, greeter.WithTLSFiles(p.serverFiles(true)), greeter.WithAuthzPolicyFile(policyFile, testRefresh),
		greeter.WithTokenValidator(tokens), greeter.WithLogger(logger))
	ctx := testContext(t)
	select {
	case <-loaded: // the first load, at NewServer
	case <-ctx.Done():
		t.Fatal("no policy loaded")
	}
	admin := greeter.WithTLSFiles(p.clientFiles(t, "admin", p.ca, testpki.Leaf{URIs: []string{"spiffe://greeter.test/admin"}}))
	guest := greeter.WithTLSFiles(p.clientFiles(t, "guest", p.ca, testpki.Leaf{URIs: []string{"spiffe://greeter.test/guest"}}))

	for _, tt := range []struct {
		name   string
		opts   []greeter.ClientOption
		md     []string
		again  bool
		code   codes.Code
		inMsgs string
	}{
		{"guest SayHello", []greeter.ClientOption{guest, greeter.WithBearerToken("guest-token")}, nil, false, codes.OK, ""},
		{"guest SayHelloAgain", []greeter.ClientOption{guest, greeter.WithBearerToken("guest-token")}, nil, true, codes.PermissionDenied, `does not allow "spiffe://greeter.test/guest" to call /Greeter/SayHelloAgain`},
		{"admin certificate SayHelloAgain", []greeter.ClientOption{admin, greeter.WithBearerToken("guest-token")}, nil, true, codes.OK, ""},
		{"admin token SayHelloAgain", []greeter.ClientOption{guest, greeter.WithBearerToken("admin-token")}, nil, true, codes.OK, ""},
		{"guest claiming admin in the identity header", []greeter.ClientOption{guest, greeter.WithBearerToken("guest-token")}, []string{"x-greeter-identity", "admin"}, true, codes.PermissionDenied, "does not allow"},
		{"admin certificate without a token", []greeter.ClientOption{admin}, nil, true, codes.Unauthenticated, "missing bearer token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr, tt.opts...)
			call := c.SayHello
			if tt.again {
				call = c.SayHelloAgain
			}
			cctx := ctx
			if tt.md != nil {
				cctx = metadata.AppendToOutgoingContext(ctx, tt.md...)
			}
			_, err := call(cctx, "you")
			wantCode(t, tt.name, err, tt.code, tt.inMsgs)
		})
	}
	// A new policy takes effect without a restart.
	testpki.Write(t, p.dir, "policy.json", []byte(strings.Replace(testPolicy, `"spiffe://greeter.test/admin"]`, `"spiffe://greeter.test/admin", "spiffe://greeter.test/guest"]`, 1)))
	select {
	case <-loaded:
	case <-ctx.Done():
		t.Fatal("the new policy was not loaded")
	}
	if _, err := dial(t, addr, guest, greeter.WithBearerToken("guest-token")).SayHelloAgain(ctx, "you"); err != nil {
		t.Errorf("guest SayHelloAgain under the new policy: %v", err)
	}
}

// notifyHandler sends on ch for each record whose message is msg.
type notifyHandler struct {
	slog.Handler
	msg string
	ch  chan<- struct{}
}

func (notifyHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h notifyHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.ch <- struct{}{}
	}
	return h.Handler.Handle(ctx, r)
}

// TestRateLimit: each client has its own bucket; the refusal says when to
// retry, in its message and in a RetryInfo detail; health checks are not
// counted.
func TestRateLimit(t *testing.T) {
	p := newPKI(t)
	_, addr := startTCPGreeter(t, greeter.WithTLSFiles(p.serverFiles(true)), greeter.WithRateLimit(0.001, 2))
	ctx := testContext(t)
	a := dial(t, addr, greeter.WithTLSFiles(p.clientFiles(t, "a", p.ca, testpki.Leaf{URIs: []string{"spiffe://greeter.test/a"}})))
	b := dial(t, addr, greeter.WithTLSFiles(p.clientFiles(t, "b", p.ca, testpki.Leaf{URIs: []string{"spiffe://greeter.test/b"}})))
	for range 2 {
		if _, err := a.SayHello(ctx, "you"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.SayHello(ctx, "you")
	wantCode(t, "a's third call", err, codes.ResourceExhausted, "rate limit exceeded: client spiffe://greeter.test/a may make 0.001 calls a second (bursts of 2); retry after ")
	var delay time.Duration
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	if delay < 900*time.Second || delay > 1000*time.Second {
		t.Errorf("RetryInfo delay %v; want about 1000s (one call per 1000s)", delay)
	}
	if _, err := b.SayHello(ctx, "you"); err != nil {
		t.Errorf("b's first call: %v", err)
	}
	for range 3 {
		if _, err := healthpb.NewHealthClient(a.Conn()).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Errorf("a health check over the limit: %v", err)
		}
	}
}

func TestSecurityOptionsValidated(t *testing.T) {
	p := newPKI(t)
	missing := p.dir + "/missing.pem"
	for _, tt := range []struct {
		name string
		opts []greeter.ServerOption
		want string
	}{
		{"TLS 1.1", []greeter.ServerOption{greeter.WithTLS(&tls.Config{MinVersion: tls.VersionTLS11})}, "TLS 1.2 is the least"},
		{"WithTLS without a certificate", []greeter.ServerOption{greeter.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12})}, "no certificate for the server to present"},
		{"no key", []greeter.ServerOption{greeter.WithTLSFiles(greeter.TLSFiles{CertFile: p.certFile})}, "needs CertFile and KeyFile"},
		{"missing cert", []greeter.ServerOption{greeter.WithTLSFiles(greeter.TLSFiles{CertFile: missing, KeyFile: p.keyFil})}, "missing.pem"},
		{"CA file without a certificate", []greeter.ServerOption{greeter.WithTLSFiles(greeter.TLSFiles{CertFile: p.certFile, KeyFile: p.keyFil, CAFile: p.keyFil})}, "no PEM certificate"},
		{"both TLS options", []greeter.ServerOption{greeter.WithTLS(&tls.Config{}), greeter.WithTLSFiles(p.serverFiles(false))}, "choose one"},
		{"bad policy", []greeter.ServerOption{greeter.WithAuthzPolicy(`{"name": "x"}`)}, "WithAuthzPolicy"},
		{"missing policy file", []greeter.ServerOption{greeter.WithAuthzPolicyFile(missing, 0)}, "WithAuthzPolicyFile"},
		{"nil validator", []greeter.ServerOption{greeter.WithTokenValidator(nil)}, "nil validator"},
		{"zero rate", []greeter.ServerOption{greeter.WithRateLimit(0, 1)}, "must be positive"},
		{"zero burst", []greeter.ServerOption{greeter.WithRateLimit(1, 0)}, "burst must be at least 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := greeter.NewServer(tt.opts...)
			if err == nil {
				_ = srv.Shutdown(context.Background())
				t.Fatalf("NewServer succeeded; want an error with %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewServer: %v; want %q in it", err, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name string
		opts []greeter.ClientOption
		want string
	}{
		{"empty token", []greeter.ClientOption{greeter.WithInsecure(), greeter.WithBearerToken("")}, "empty token"},
		{"TLS files and insecure", []greeter.ClientOption{greeter.WithInsecure(), greeter.WithTLSFiles(greeter.TLSFiles{})}, "choose one"},
		{"TLS 1.0", []greeter.ClientOption{greeter.WithTLS(&tls.Config{MinVersion: tls.VersionTLS10})}, "TLS 1.2 is the least"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := greeter.NewClient("localhost:50051", tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient: %v; want an error with %q", err, tt.want)
			}
		})
	}
	for _, m := range []map[string]string{nil, {"a": ""}, {"": "t"}, {"a": "t t"}, {"a": "same", "b": "same"}} {
		if _, err := greeter.StaticTokens(m); err == nil {
			t.Errorf("StaticTokens(%q) succeeded", m)
		}
	}
}

// TestClientCertificateRefusalIsFinal: a server's refusal of the client's
// certificate (none, another CA's, an expired one), which over TLS 1.3
// arrives after the client's handshake is done, ends even a wait-for-ready
// call with Unavailable, as a refused server certificate does: another
// attempt cannot succeed, so the call neither waits nor retries.
func TestClientCertificateRefusalIsFinal(t *testing.T) {
	p := newPKI(t)
	_, addr := startTCPGreeter(t, greeter.WithTLSFiles(p.serverFiles(true)))
	// The test's deadline is the calls' only one: a call that waited for
	// a connection would end DeadlineExceeded.
	ctx := testContext(t)
	for _, tt := range []struct {
		name  string
		files greeter.TLSFiles
		alert string
	}{
		{"no certificate", greeter.TLSFiles{CAFile: p.caFile}, "certificate required"},
		{"certificate from another CA", p.clientFiles(t, "other", p.other, testpki.Leaf{URIs: []string{"spiffe://greeter.test/x"}}), "unknown certificate authority"},
		{"expired certificate", p.clientFiles(t, "expired", p.ca, testpki.Leaf{URIs: []string{"spiffe://greeter.test/x"}, Expired: true}), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dial(t, addr, greeter.WithTLSFiles(tt.files)).SayHello(ctx, "you", grpc.WaitForReady(true))
			wantCode(t, "a wait-for-ready SayHello", err, codes.Unavailable, "the server refused the client certificate: remote error: tls: "+tt.alert)
		})
	}
	// Over TLS 1.2 the refusal ends the client's handshake itself.
	_, addr12 := startTCPGreeter(t, greeter.WithTLS(&tls.Config{
		Certificates: []tls.Certificate{p.serverCert.TLS}, MaxVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.ca.Pool(),
	}))
	_, err := dial(t, addr12, greeter.WithTLSFiles(greeter.TLSFiles{CAFile: p.caFile})).SayHello(ctx, "you", grpc.WaitForReady(true))
	wantCode(t, "a wait-for-ready SayHello over TLS 1.2 without a certificate", err, codes.Unavailable, "remote error: tls: handshake failure\" (the server refused the handshake: it may want a client certificate")
}

// TestTLSFilesClientRefusedTargetLeaksNothing: a client with WithTLSFiles
// that NewClient refuses for its target stops the file watcher it started.
func TestTLSFilesClientRefusedTargetLeaksNothing(t *testing.T) {
	p := newPKI(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, target := range []string{"ipv4:127.0.0.1:50051", "nosuchscheme://x/127.0.0.1:50051"} {
		if c, err := greeter.NewClient(target, greeter.WithTLSFiles(greeter.TLSFiles{CAFile: p.caFile})); err == nil {
			c.Close()
			t.Errorf("NewClient(%q) succeeded; want an error naming the scheme", target)
		}
	}
}

// TestAuthzPolicyNeedsVerifiedCertificates: grpc's authz matches principals
// against the client's certificate whether or not it was verified, so a
// WithTLS config that takes client certificates without verifying them
// (tls.RequestClientCert, tls.RequireAnyClientCert) cannot be combined with
// a policy: anyone could name themselves admin in a certificate of their own.
func TestAuthzPolicyNeedsVerifiedCertificates(t *testing.T) {
	p := newPKI(t)
	for _, auth := range []tls.ClientAuthType{tls.RequestClientCert, tls.RequireAnyClientCert} {
		srv, err := greeter.NewServer(greeter.WithTLS(&tls.Config{Certificates: []tls.Certificate{p.serverCert.TLS}, ClientAuth: auth}),
			greeter.WithAuthzPolicy(testPolicy))
		if err == nil {
			_ = srv.Shutdown(context.Background())
			// What the refusal prevents: a certificate from a CA the
			// server has never heard of passes the policy as admin.
			_, addr := startTCPGreeter(t, greeter.WithTLS(&tls.Config{Certificates: []tls.Certificate{p.serverCert.TLS}, ClientAuth: auth}),
				greeter.WithAuthzPolicy(testPolicy))
			forged := p.clientFiles(t, "forged", p.other, testpki.Leaf{URIs: []string{"spiffe://greeter.test/admin"}})
			_, callErr := dial(t, addr, greeter.WithTLSFiles(forged)).SayHelloAgain(testContext(t), "you")
			t.Fatalf("NewServer(WithTLS(ClientAuth %v), WithAuthzPolicy) succeeded (and a forged admin certificate's SayHelloAgain got %v); want an error", auth, callErr)
		}
		if !strings.Contains(err.Error(), "verif") {
			t.Errorf("NewServer(WithTLS(ClientAuth %v), WithAuthzPolicy): %v; want an error about verifying client certificates", auth, err)
		}
	}
}

// TestAuthzPolicyFileBadUpdate: a policy file rewritten with a policy that
// does not parse leaves the last good policy in force, and the server's
// log says so.
func TestAuthzPolicyFileBadUpdate(t *testing.T) {
	dir := t.TempDir()
	policyFile := testpki.Write(t, dir, "policy.json", []byte(testPolicy))
	refused := make(chan struct{}, 10)
	logger := slog.New(notifyHandler{slog.DiscardHandler, "authorization policy not loaded; the last good policy stays in force", refused})
	_, addr := startTCPGreeter(t, greeter.WithAuthzPolicyFile(policyFile, testRefresh), greeter.WithLogger(logger))
	ctx := testContext(t)
	c := dial(t, addr, greeter.WithInsecure())
	testpki.Write(t, dir, "policy.json", []byte(`{"name": "greeter", "allow_rules": [{"name": "typo"`))
	select {
	case <-refused:
	case <-ctx.Done():
		t.Fatal("no warning about the policy that does not parse")
	}
	if _, err := c.SayHello(ctx, "you"); err != nil {
		t.Errorf("SayHello under the last good policy: %v", err)
	}
	_, err := c.SayHelloAgain(ctx, "you")
	wantCode(t, "SayHelloAgain under the last good policy", err, codes.PermissionDenied, "does not allow an unidentified caller")
}

// Register serves on the importer's grpc.Server, whose credentials and
// interceptors are its own: the security options are refused, naming
// themselves, rather than leaving the service open, and nothing is
// registered.
func TestRegisterRefusesSecurityOptions(t *testing.T) {
	tokens, err := greeter.StaticTokens(map[string]string{"alice": "alice-s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	ca := testpki.NewCA(t, "register CA")
	cert := ca.Issue(t, testpki.Localhost())
	pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]greeter.ServerOption{
		"WithTokenValidator": greeter.WithTokenValidator(tokens),
		"WithAuthzPolicy":    greeter.WithAuthzPolicy(testPolicy),
		"WithRateLimit":      greeter.WithRateLimit(10, 10),
		"WithTLS":            greeter.WithTLS(&tls.Config{Certificates: []tls.Certificate{pair}}),
	} {
		s := grpc.NewServer()
		err := greeter.Register(s, opt)
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "grpc.Creds") {
			t.Errorf("Register(%s) = %v; want an error naming %s and saying what to do", name, err, name)
		}
		if n := len(s.GetServiceInfo()); n != 0 {
			t.Errorf("Register(%s) registered %d services; want none", name, n)
		}
		s.Stop()
	}
	// The service's own options are still fine.
	s := grpc.NewServer()
	defer s.Stop()
	if err := greeter.Register(s, greeter.WithServerDeadlines(greeter.DeadlinePolicy{Default: time.Second})); err != nil {
		t.Errorf("Register with a deadline policy: %v", err)
	}
}
