package greeter

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-greeter/greeter/internal/auth"
	"github.com/grpc-greeter/greeter/internal/observe"
	"github.com/grpc-greeter/greeter/internal/ratelimit"
	"google.golang.org/grpc"
	"google.golang.org/grpc/authz"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/tls/certprovider"
	"google.golang.org/grpc/credentials/tls/certprovider/pemfile"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

// DefaultTLSRefresh is how often a side configured with [WithTLSFiles]
// checks its certificate, key and CA files for changes, unless
// TLSFiles.Refresh says otherwise.
const DefaultTLSRefresh = time.Minute

// DefaultAuthzRefresh is how often [WithAuthzPolicyFile] checks its policy
// file for changes when given a refresh of zero.
const DefaultAuthzRefresh = time.Minute

// IdentityHeader is the request header in which a server that checks
// bearer tokens ([WithTokenValidator]) passes the identity a valid token
// was issued to on to its authorization policy ([WithAuthzPolicy]): a
// policy matches token holders with
// "headers": [{"key": "x-greeter-identity", "values": ["NAME"]}]. The
// server removes any value a caller sends itself.
const IdentityHeader = auth.IdentityHeader

// TLSFiles names the PEM files of one side's TLS, for [WithTLSFiles]. The
// files are read at construction, so that a missing or bad file is an
// error there, and again every Refresh: a changed certificate and key, or
// CA bundle, takes effect for the next handshakes without a restart, while
// connections already made go on. A file that cannot be read or parsed
// at a refresh (one half-written, a key that does not match its
// certificate) is skipped, and the last good one stays in use: write the
// new files and then rename them into place.
type TLSFiles struct {
	// CertFile and KeyFile are this side's certificate (chain) and private
	// key. A server needs them; on a client they are the client
	// certificate presented to a server that asks for one (mTLS).
	CertFile, KeyFile string
	// CAFile holds the CA certificates the peer's certificate must chain
	// to. On a server it turns mutual TLS on: every client must present a
	// certificate that chains to one of them, and a call's [PeerIdentity]
	// is the identity that certificate names. On a client, empty means
	// the system's roots.
	CAFile string
	// ServerName is, on a client, the name the server's certificate must
	// carry; empty means the host of the target. A server ignores it.
	ServerName string
	// Refresh is how often the files are checked for changes; zero means
	// [DefaultTLSRefresh].
	Refresh time.Duration
}

// PeerIdentity returns the identity of the caller of a server call whose
// context is ctx: the identity its verified client certificate names (the
// first URI SAN, else the first DNS SAN, else the subject), else the
// identity its bearer token was issued to ([WithTokenValidator]), else "".
// Handlers and server interceptors use it to know who calls; a server's
// log lines about a call carry it as "greeter.peer_identity". grpc's
// authorization policies look at the same kind of name but match a
// principal against every URI SAN of the certificate (else every DNS
// SAN), not only the first.
func PeerIdentity(ctx context.Context) string { return auth.Identity(ctx) }

// TokenValidator checks a bearer token sent by a caller and returns the
// identity it was issued to, which [PeerIdentity] then returns and
// authorization policies see in [IdentityHeader]. To refuse the token,
// return an error: a plain error makes the call Unauthenticated with a
// message that never repeats the token; an error with a gRPC status, such
// as status.Error(codes.PermissionDenied, "..."), reaches the caller as it
// is.
type TokenValidator func(ctx context.Context, token string) (identity string, err error)

// StaticTokens returns a TokenValidator that accepts the tokens given,
// which map each identity to its token. Tokens are compared in constant
// time (their SHA-256 digests, against every token), so that the time a
// refusal takes tells nothing of the tokens. It returns an error for an
// empty map, an empty identity or token, a token with white space and a
// token given to two identities.
func StaticTokens(tokens map[string]string) (TokenValidator, error) {
	v, err := auth.Static(tokens)
	if err != nil {
		return nil, fmt.Errorf("greeter: StaticTokens: %w", err)
	}
	return TokenValidator(v), nil
}

// serverSecurity is what the security options of a server set.
type serverSecurity struct {
	files       *TLSFiles
	tokens      TokenValidator
	tokensSet   bool
	policy      string
	policySet   bool
	policyFile  string
	policyEvery time.Duration
	rate        float64
	burst       int
	rateSet     bool
}

// refuseInRegister names the security options given to Register, which
// cannot apply them to a grpc.Server it did not build.
func (s *serverSecurity) refuseInRegister(c *serverConfig) error {
	var given []string
	for _, o := range []struct {
		set  bool
		name string
	}{
		{c.tlsSet, "WithTLS"}, {s.files != nil, "WithTLSFiles"}, {s.tokensSet, "WithTokenValidator"},
		{s.policySet, "WithAuthzPolicy"}, {s.policyFile != "", "WithAuthzPolicyFile"}, {s.rateSet, "WithRateLimit"},
	} {
		if o.set {
			given = append(given, o.name)
		}
	}
	if len(given) == 0 {
		return nil
	}
	return fmt.Errorf("greeter: Register: %s secure a whole server, and Register serves on yours: give your grpc.Server its own credentials (grpc.Creds) and interceptors (grpc-go's authz package), or serve with NewServer", strings.Join(given, ", "))
}

func (s *serverSecurity) validate(c *serverConfig) []error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf("greeter: "+format, args...))
		}
	}
	if c.tls != nil {
		check(c.tls.MinVersion != 0 && c.tls.MinVersion < tls.VersionTLS12, "WithTLS: MinVersion %s: TLS 1.2 is the least greeter serves; leave MinVersion 0 or set tls.VersionTLS12", tls.VersionName(c.tls.MinVersion))
		check(len(c.tls.Certificates) == 0 && c.tls.GetCertificate == nil && c.tls.GetConfigForClient == nil,
			"WithTLS: the config has no certificate for the server to present, so every handshake would fail: set Certificates or GetCertificate (or use WithTLSFiles)")
	}
	if f := s.files; f != nil {
		check(c.tlsSet, "WithTLS and WithTLSFiles both given: choose one")
		check(f.CertFile == "" || f.KeyFile == "", "WithTLSFiles: a server needs CertFile and KeyFile")
		check(f.Refresh < 0, "WithTLSFiles: Refresh %v: must not be negative", f.Refresh)
		if f.CertFile != "" && f.KeyFile != "" {
			errs = append(errs, checkTLSFiles(*f))
		}
	}
	check(s.tokensSet && s.tokens == nil, "WithTokenValidator: nil validator")
	check(s.policySet && s.policyFile != "", "WithAuthzPolicy and WithAuthzPolicyFile both given: choose one")
	if c.tls != nil && (s.policySet || s.policyFile != "") {
		// grpc's authz matches principals against the client's
		// certificate whether or not anyone verified it.
		a := c.tls.ClientAuth
		check(a == tls.RequestClientCert || a == tls.RequireAnyClientCert,
			"WithTLS with ClientAuth %v and an authorization policy: the policy would match principals in client certificates nobody verified, which anyone can make; use tls.RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with ClientCAs, or WithTLSFiles with a CAFile", a)
	}
	if s.policySet {
		if _, err := authz.NewStatic(s.policy); err != nil {
			errs = append(errs, fmt.Errorf("greeter: WithAuthzPolicy: %w", err))
		}
	}
	check(s.policyEvery < 0, "WithAuthzPolicyFile(%q, %v): refresh must not be negative", s.policyFile, s.policyEvery)
	if s.rateSet {
		check(!(s.rate > 0) || math.IsInf(s.rate, 1), "WithRateLimit(%v, %d): calls a second must be positive and finite", s.rate, s.burst)
		check(s.burst < 1, "WithRateLimit(%v, %d): burst must be at least 1", s.rate, s.burst)
	}
	return errs
}

// checkTLSFiles reads f's files once, so that a missing or bad one is an
// error at construction rather than a handshake that waits forever.
func checkTLSFiles(f TLSFiles) error {
	if f.CertFile != "" || f.KeyFile != "" {
		if f.CertFile == "" || f.KeyFile == "" {
			return errors.New("greeter: WithTLSFiles: CertFile and KeyFile go together")
		}
		if _, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile); err != nil {
			return fmt.Errorf("greeter: WithTLSFiles: %w", err)
		}
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return fmt.Errorf("greeter: WithTLSFiles: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return fmt.Errorf("greeter: WithTLSFiles: no PEM certificate in CAFile %s", f.CAFile)
		}
	}
	return nil
}

// exempt are the calls no token, and no rate limit, is asked of: health
// checks, so that load balancers and Kubernetes probes, which send no
// token, see the server's health. Authorization policies cover them like
// any other method.
func exempt(method string) bool {
	return strings.HasPrefix(method, "/"+healthpb.Health_ServiceDesc.ServiceName+"/")
}

// serverSecurityParts are what a server's security options ask for: the
// transport credentials (nil for plaintext), the interceptors in their
// order (tokens, then authorization, then the rate limit), and the file
// watchers to close at shutdown.
type serverSecurityParts struct {
	creds credentials.TransportCredentials
	// firstUnary and firstStream run early in the chain, right after
	// recovery.
	firstUnary  []grpc.UnaryServerInterceptor
	firstStream []grpc.StreamServerInterceptor
	unary       []grpc.UnaryServerInterceptor
	stream      []grpc.StreamServerInterceptor
	closers     []func()
}

func newServerSecurity(c *serverConfig) (p serverSecurityParts, err error) {
	s := &c.sec
	defer func() {
		if err != nil {
			for _, f := range p.closers {
				f()
			}
		}
	}()
	if f := s.files; f != nil {
		prov, err := pemfile.NewProvider(pemfile.Options{CertFile: f.CertFile, KeyFile: f.KeyFile, RootFile: f.CAFile, RefreshDuration: refresh(f.Refresh)})
		if err != nil {
			return p, fmt.Errorf("greeter: WithTLSFiles: %w", err)
		}
		p.closers = append(p.closers, prov.Close)
		p.creds = credentials.NewTLS(&tls.Config{GetConfigForClient: serverConfigFrom(prov, f.CAFile != "")})
	} else if c.tls != nil {
		p.creds = credentials.NewTLS(c.tls)
	}
	var policy auth.Policy
	switch {
	case s.policySet:
		policy, _ = authz.NewStatic(s.policy) // validated
	case s.policyFile != "":
		logger := c.logger
		w, err := authz.NewFileWatcherWithOptions(authz.FileWatcherOptions{
			PolicyFile:      s.policyFile,
			RefreshDuration: cmpOr(s.policyEvery, DefaultAuthzRefresh),
			OnPolicyUpdate: func(string) {
				logger.Info("authorization policy loaded", "file", s.policyFile)
			},
		})
		if err != nil {
			return p, fmt.Errorf("greeter: WithAuthzPolicyFile(%q): %w", s.policyFile, err)
		}
		p.closers = append(p.closers, w.Close)
		p.closers = append(p.closers, reportBadPolicies(s.policyFile, cmpOr(s.policyEvery, DefaultAuthzRefresh), logger))
		policy = w
	}
	if s.tokens != nil {
		// A slot for the token's identity in every call's context, early
		// in the chain: interceptors that run before the token check
		// read the identity when the call ends.
		p.firstUnary = append(p.firstUnary, auth.UnarySlot)
		p.firstStream = append(p.firstStream, auth.StreamSlot)
	}
	if s.tokens != nil || policy != nil {
		// Also without a validator: a caller must never set the identity
		// header a policy trusts.
		t := auth.Tokens{Validate: auth.Validator(s.tokens), Skip: exempt, SetHeader: policy != nil}
		p.unary = append(p.unary, t.UnaryServerInterceptor())
		p.stream = append(p.stream, t.StreamServerInterceptor())
	}
	if policy != nil {
		p.unary = append(p.unary, auth.UnaryAuthz(policy))
		p.stream = append(p.stream, auth.StreamAuthz(policy))
	}
	if s.rateSet {
		l := ratelimit.New(s.rate, s.burst, clientKey, exempt, nil)
		p.unary = append(p.unary, l.UnaryServerInterceptor())
		p.stream = append(p.stream, l.StreamServerInterceptor())
	}
	return p, nil
}

// reportBadPolicies reads the policy file at path every interval and logs
// a warning, once for each new content, when grpc's authz watcher will not
// load it: the watcher keeps the last good policy and says why only in
// grpc's own log at WARNING, which is off by default, so that a policy
// change with a typo would otherwise go unnoticed. stop ends it.
func reportBadPolicies(path string, every time.Duration, logger *slog.Logger) (stop func()) {
	last, _ := os.ReadFile(path) // loaded at construction
	unreadable := false
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			b, err := os.ReadFile(path)
			if err != nil {
				if !unreadable {
					logger.Warn("authorization policy file unreadable; the last good policy stays in force", "file", path, "error", err)
				}
				unreadable = true
				continue
			}
			unreadable = false
			if bytes.Equal(b, last) {
				continue
			}
			last = b
			if _, err := authz.NewStatic(string(b)); err != nil {
				logger.Warn("authorization policy not loaded; the last good policy stays in force", "file", path, "error", err)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func refresh(d time.Duration) time.Duration { return cmpOr(d, DefaultTLSRefresh) }

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// clientKey names the client a rate limit counts a call against: its
// identity, else its IP address.
func clientKey(ctx context.Context) string {
	if id := auth.Identity(ctx); id != "" {
		return id
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
			return host
		}
		return p.Addr.String()
	}
	return "unknown"
}

// serverConfigFrom serves each handshake with the key material prov holds
// at that moment: rotation reaches new connections.
func serverConfigFrom(prov certprovider.Provider, mutual bool) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		km, err := prov.KeyMaterial(hello.Context())
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{Certificates: km.Certs, MinVersion: tls.VersionTLS12}
		if mutual {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
			cfg.ClientCAs = km.Roots
		}
		return cfg, nil
	}
}

// clientSecurity is what the security options of a client set.
type clientSecurity struct {
	files    *TLSFiles
	token    string
	tokenSet bool
}

func (s *clientSecurity) validate(c *clientConfig) []error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf("greeter: "+format, args...))
		}
	}
	if c.tls != nil {
		check(c.tls.MinVersion != 0 && c.tls.MinVersion < tls.VersionTLS12, "WithTLS: MinVersion %s: TLS 1.2 is the least greeter speaks; leave MinVersion 0 or set tls.VersionTLS12", tls.VersionName(c.tls.MinVersion))
	}
	if f := s.files; f != nil {
		check(c.tlsSet, "WithTLS and WithTLSFiles both given: choose one")
		check(c.insecure, "WithTLSFiles and WithInsecure both given: choose one")
		check(f.Refresh < 0, "WithTLSFiles: Refresh %v: must not be negative", f.Refresh)
		errs = append(errs, checkTLSFiles(*f))
	}
	if s.tokenSet {
		check(s.token == "", "WithBearerToken: empty token")
		check(strings.ContainsAny(s.token, " \t\r\n"), "WithBearerToken: the token has white space, which a header cannot carry")
		check(c.insecure, "WithBearerToken and WithInsecure both given: a bearer token is never sent over plaintext; use WithTLS or WithTLSFiles")
	}
	return errs
}

// build returns the client's transport credentials for s.files (nil
// without), its per-RPC credentials, and what to close with the client.
func (s *clientSecurity) build() (creds credentials.TransportCredentials, opts []grpc.DialOption, closers []func(), err error) {
	if f := s.files; f != nil {
		prov, err := pemfile.NewProvider(pemfile.Options{CertFile: f.CertFile, KeyFile: f.KeyFile, RootFile: f.CAFile, RefreshDuration: refresh(f.Refresh)})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("greeter: WithTLSFiles: %w", err)
		}
		closers = append(closers, prov.Close)
		creds = &clientCredentials{config: filesConfig(prov, f.ServerName), base: credentials.NewTLS(&tls.Config{ServerName: f.ServerName, MinVersion: tls.VersionTLS12})}
	}
	if s.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.Bearer(s.token)))
	}
	return creds, opts, closers, nil
}

// clientCredentials are grpc's TLS credentials made afresh for each
// handshake from the config that config returns then: with WithTLSFiles,
// the client's certificate and the roots it verifies the server against
// follow their files, without InsecureSkipVerify. A handshake in which the
// server asked for a client certificate waits for the server's verdict on
// it (awaitVerdict).
type clientCredentials struct {
	config     func(context.Context) (*tls.Config, error)
	serverName string // OverrideServerName's, when set
	// base answers Info; it never handshakes.
	base credentials.TransportCredentials
}

// filesConfig is the client config from the key material prov holds now.
func filesConfig(prov certprovider.Provider, serverName string) func(context.Context) (*tls.Config, error) {
	return func(ctx context.Context) (*tls.Config, error) {
		km, err := prov.KeyMaterial(ctx)
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{ServerName: serverName, RootCAs: km.Roots, MinVersion: tls.VersionTLS12}
		if len(km.Certs) > 0 {
			// Sent whatever CAs the server names, so that a certificate
			// it does not trust is refused as such (unknown CA), not
			// as missing.
			cert := &km.Certs[0]
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		return cfg, nil
	}
}

// newClientCredentials are clientCredentials for a fixed config (WithTLS).
func newClientCredentials(cfg *tls.Config) *clientCredentials {
	cfg = cfg.Clone() // the importer's may change after NewClient
	return &clientCredentials{
		config: func(context.Context) (*tls.Config, error) { return cfg.Clone(), nil },
		base:   credentials.NewTLS(cfg),
	}
}

func (r *clientCredentials) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cfg, err := r.config(ctx)
	if err != nil {
		return nil, nil, err
	}
	if r.serverName != "" {
		cfg.ServerName = r.serverName
	}
	// Choose the client certificate as crypto/tls does, noting that the
	// server asked for one.
	var asked atomic.Bool
	certs, get := cfg.Certificates, cfg.GetClientCertificate
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked.Store(true)
		if get != nil {
			return get(cri)
		}
		for i := range certs {
			if cri.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
		return &tls.Certificate{}, nil // none to send
	}
	nc, info, err := credentials.NewTLS(cfg).ClientHandshake(ctx, authority, conn)
	if err != nil || !asked.Load() {
		return nc, info, err
	}
	if ti, ok := info.(credentials.TLSInfo); ok && ti.State.Version == tls.VersionTLS13 {
		if nc, err = awaitVerdict(ctx, nc); err != nil {
			return nil, nil, err
		}
	}
	return nc, info, nil
}

// verdictWait bounds how long a client that sent a certificate over TLS
// 1.3 waits for the server's first bytes.
const verdictWait = time.Second

// awaitVerdict reads the server's first byte on a TLS 1.3 connection on
// which the client was asked for a certificate. In TLS 1.3 the client's
// handshake ends before the server has checked that certificate, and a
// refusal (an alert: certificate required, unknown CA, expired) would
// otherwise surface as a broken pipe on the first write. A gRPC server
// speaks first (its SETTINGS), so the byte is there at once; it is handed
// back to grpc. A server that says nothing within verdictWait is given the
// connection as it is.
func awaitVerdict(ctx context.Context, conn net.Conn) (net.Conn, error) {
	deadline := time.Now().Add(verdictWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetReadDeadline(deadline); err != nil {
		return conn, nil
	}
	var b [1]byte
	n, err := conn.Read(b[:])
	_ = conn.SetReadDeadline(time.Time{})
	if ne, ok := err.(net.Error); err != nil && !(ok && ne.Timeout()) {
		conn.Close()
		if a, ok := remoteAlert(err); ok {
			// As a tls.AlertError, which the handshake's caller
			// (tlsCredentials) tells apart: a refused certificate is
			// final, as the server's own would be.
			return nil, fmt.Errorf("the server refused the client certificate: remote error: %w", a)
		}
		return nil, fmt.Errorf("the server refused the client certificate: %w", err)
	}
	return &prefixConn{Conn: conn, prefix: b[:n]}, nil
}

// remoteAlert returns the alert the peer sent that a read on a tls.Conn
// failed with: crypto/tls reports it as a net.OpError "remote error" around
// an unexported type, whose text is that of the tls.AlertError of the
// same number.
func remoteAlert(err error) (tls.AlertError, bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return 0, false
	}
	msg := op.Err.Error()
	for a := range 256 {
		if tls.AlertError(a).Error() == msg {
			return tls.AlertError(a), true
		}
	}
	return 0, false
}

// prefixConn reads prefix before the rest of Conn.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (r *clientCredentials) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("greeter: client credentials cannot serve")
}

func (r *clientCredentials) Info() credentials.ProtocolInfo { return r.base.Info() }

func (r *clientCredentials) Clone() credentials.TransportCredentials {
	c := *r
	c.base = r.base.Clone()
	return &c
}

//lint:ignore SA1019 part of the TransportCredentials interface
func (r *clientCredentials) OverrideServerName(name string) error {
	r.serverName = name
	return nil
}

// withIdentity adds the caller's identity to the log lines a server writes
// about a call (those given the call's context).
func withIdentity(l *slog.Logger) *slog.Logger {
	return slog.New(identityHandler{l.Handler()})
}

type identityHandler struct{ slog.Handler }

func (h identityHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if id := auth.Identity(ctx); id != "" {
			r = r.Clone()
			r.AddAttrs(slog.String(observe.KeyPeerIdentity, id))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h identityHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return identityHandler{h.Handler.WithAttrs(as)}
}

func (h identityHandler) WithGroup(name string) slog.Handler {
	return identityHandler{h.Handler.WithGroup(name)}
}
