package greeter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// ConnectionError says why a call found no connection to the server: the
// client's target, the address it dials, the channel's state and grpc's last
// connection error (connection refused, a name that did not resolve, a TLS
// handshake failure, ...), with a hint for the common mistakes. A [Client]
// returns one, with code Unavailable, for a call that failed because no
// connection could be made; a [DeadlineError] whose Phase is
// [PhaseConnecting] carries one in its Connection field. Get it with
// errors.As.
type ConnectionError struct {
	// Target is the target the Client was built for.
	Target string
	// Addr is the address the Client dials for Target ("127.0.0.1:50051",
	// "unix:/run/greeter.sock"); empty when a name resolver other than DNS
	// or passthrough picks the addresses.
	Addr string
	// State is the channel's state when the call ended: TRANSIENT_FAILURE
	// when connecting failed, CONNECTING when it had not finished.
	State connectivity.State
	// Err is grpc's last connection error; nil while still connecting.
	Err error
	// Hint says what to change when the error is a common mistake, naming
	// the option (and the greeter CLI flag) that fixes it; empty otherwise.
	Hint string
}

// Error says what the connection was to, why it failed, and what to do:
// "no connection to 127.0.0.1:1: connection error: ... connect: connection
// refused (nothing listens there: check the port, and that the server runs
// (on the greeter CLI, --addr))".
func (e *ConnectionError) Error() string {
	var b strings.Builder
	b.WriteString("no connection to ")
	b.WriteString(e.Target)
	if e.Addr != "" && e.Addr != e.Target {
		b.WriteString(" (" + e.Addr + ")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString(": still connecting (" + strings.ToLower(e.State.String()) + ")")
	}
	if e.Hint != "" {
		b.WriteString(" (" + e.Hint + ")")
	}
	return b.String()
}

// Unwrap returns grpc's last connection error.
func (e *ConnectionError) Unwrap() error { return e.Err }

// GRPCStatus is Unavailable with the explanation of Error.
func (e *ConnectionError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.Error())
}

// probeMethod is a method no server has and no service config names. A
// call to it on a channel in TRANSIENT_FAILURE fails at once with the
// picker's error, which is grpc's last connection error, and sends nothing.
// greeter's client interceptors and the importer's let it through untouched
// (skipProbe); grpc-go's OpenTelemetry instrumentation (WithMeterProvider,
// WithTracerProvider) and any stats handler or interceptor given as a raw
// dial option with WithDialOptions see it, as one more call that failed at
// once.
const probeMethod = "/greeter.ConnectionProbe/LastConnectionError"

// probeTimeout bounds the probe, which returns at once in
// TRANSIENT_FAILURE, and a diagnostic name lookup.
const probeTimeout = time.Second

// connectionError explains why a call that ended with err found no
// connection, or returns nil when the channel is READY: the call reached a
// server, or a connection came up as the call ended.
func (c *Client) connectionError(ctx context.Context, err error) *ConnectionError {
	state := c.conn.GetState()
	if state == connectivity.Ready || state == connectivity.Shutdown {
		return nil
	}
	ce := &ConnectionError{Target: c.target, Addr: c.addr, State: state}
	if state == connectivity.TransientFailure {
		// The caller's context has ended: the probe and lookup get their
		// own bounded time, keeping its values.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
		defer cancel()
		perr := c.conn.Invoke(pctx, probeMethod, &greeterpb.HelloRequest{}, &greeterpb.HelloReply{}, grpc.WaitForReady(false))
		if st := status.Convert(perr); st.Code() == codes.Unavailable {
			ce.Err = errors.New(st.Message())
		}
	}
	if st, ok := status.FromError(err); ok && ce.Err == nil && st.Code() == codes.Unavailable {
		// The call's own error is the picker's: grpc publishes the new
		// picker before the new state, so a call can fail on a
		// TRANSIENT_FAILURE picker while the channel still says
		// CONNECTING.
		ce.Err = errors.New(st.Message())
	}
	if ce.Err != nil && strings.Contains(ce.Err.Error(), "produced zero addresses") {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
		defer cancel()
		ce.Err = c.lookupError(lctx, ce.Err)
	}
	ce.Hint = c.hint(ce.Err)
	return ce
}

// lookupError adds the resolver's own answer to grpc's "produced zero
// addresses", which grpc's DNS resolver reports for a name that does not
// exist.
func (c *Client) lookupError(ctx context.Context, err error) error {
	host, _, splitErr := net.SplitHostPort(c.addr)
	if splitErr != nil || net.ParseIP(host) != nil {
		return err
	}
	if _, lerr := net.DefaultResolver.LookupHost(ctx, host); lerr != nil {
		return fmt.Errorf("%w: %v", err, lerr)
	}
	return err
}

// hint names the fix of a common mistake, from grpc's connection error.
func (c *Client) hint(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "the server speaks plaintext: use WithInsecure (on the greeter CLI, leave out --tls and --tls-ca)"
	case strings.Contains(msg, "error reading server preface") && strings.Contains(msg, "looked like an HTTP/1.1 header"):
		return "the address answers HTTP/1.1, not gRPC: check the port (on the greeter CLI, --addr)"
	case strings.Contains(msg, "error reading server preface") && c.insecure:
		return "the server may require TLS: use WithTLS (on the greeter CLI, --tls or --tls-ca FILE)"
	case strings.Contains(msg, "cannot send secure credentials on an insecure connection"):
		return "a bearer token is only sent over TLS, and this connection is not encrypted: use WithTLS or WithTLSFiles (on the greeter CLI, --tls or --tls-ca)"
	case strings.Contains(msg, "remote error: tls: ") && strings.Contains(msg, "certificate"):
		return "the server refused this client's certificate, or wants one: give WithTLSFiles a CertFile and KeyFile signed by a CA the server trusts (on the greeter CLI, --tls-cert and --tls-key)"
	case strings.Contains(msg, "remote error: tls: handshake failure"):
		// What a TLS 1.2 server sends for a missing client certificate,
		// as well as for no common version or cipher.
		return "the server refused the handshake: it may want a client certificate (WithTLSFiles CertFile and KeyFile; on the greeter CLI, --tls-cert and --tls-key), or share no TLS version or cipher suite with this client"
	case strings.Contains(msg, "x509: cannot validate certificate for") || strings.Contains(msg, "x509: certificate is valid for") ||
		strings.Contains(msg, "x509: certificate is not valid for any names"):
		return "the server's certificate does not name this address: dial a name it carries, or set the name to expect (TLSFiles.ServerName or tls.Config.ServerName; on the greeter CLI, --tls-server-name)"
	case strings.Contains(msg, "x509: certificate has expired or is not yet valid"):
		return "the server's certificate has expired or is not yet valid: the server must renew it (check both hosts' clocks too)"
	case strings.Contains(msg, "certificate"):
		return "the server's certificate is not trusted for this address: give WithTLS the CA that signed it in RootCAs (on the greeter CLI, --tls-ca FILE)"
	case strings.Contains(msg, "name resolver error") && strings.HasPrefix(c.target, "xds:"):
		return "grpc's xDS client got no configuration for the target: check the bootstrap (GRPC_XDS_BOOTSTRAP), that the control plane runs, and that it serves a listener of that name"
	case strings.Contains(msg, "name resolver error"):
		return "the host name did not resolve: check the host (on the greeter CLI, --addr)"
	case strings.Contains(msg, "connection refused"):
		return "nothing listens there: check the port, and that the server runs (on the greeter CLI, --addr)"
	}
	return ""
}

// targetAddr returns the address a target makes grpc dial, when greeter can
// tell: for a host:port (grpc's default DNS resolver), dns:/// and
// passthrough:/// targets, and unix sockets. noPort says the target names
// a host without a port, for which grpc would dial port 443.
func targetAddr(target string) (addr string, noPort bool) {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return target, false
	}
	hostport := target
	if i := strings.Index(target, "://"); i >= 0 {
		scheme, rest := target[:i], target[i+3:]
		if scheme != "dns" && scheme != "passthrough" {
			return "", false
		}
		// The authority, if any, names a DNS server, not the host.
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "", false
		}
		hostport = rest[j+1:]
		if scheme == "passthrough" {
			return hostport, false // the dialer decides
		}
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return net.JoinHostPort(strings.Trim(hostport, "[]"), "443"), true
		}
		return "", false
	}
	return hostport, false
}

// tlsCredentials are grpc's TLS credentials, with handshake failures that
// retrying cannot fix (a certificate not trusted, a server that speaks
// plaintext) made final: grpc then ends the call at once with Unavailable
// instead of retrying it, and the call's error says why.
type tlsCredentials struct {
	credentials.TransportCredentials
}

func (c tlsCredentials) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	nc, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil && permanentTLSError(err) {
		err = finalHandshakeError{err}
	}
	return nc, info, err
}

func (c tlsCredentials) Clone() credentials.TransportCredentials {
	return tlsCredentials{c.TransportCredentials.Clone()}
}

// permanentTLSError reports whether a handshake failed in a way that
// another attempt will not change.
func permanentTLSError(err error) bool {
	var (
		record   tls.RecordHeaderError
		verify   *tls.CertificateVerificationError
		alert    tls.AlertError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	if errors.As(err, &alert) {
		return certificateAlert(alert)
	}
	if a, ok := remoteAlert(err); ok { // an alert the server sent
		return certificateAlert(a)
	}
	return errors.As(err, &record) || errors.As(err, &verify) ||
		errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// certificateAlert reports whether a TLS alert from the server says the
// handshake cannot succeed as configured: a certificate or protocol it
// refuses (RFC 8446 §6.2). Others, such as internal_error during a
// certificate reload, may pass.
func certificateAlert(a tls.AlertError) bool {
	switch a {
	case 40, 42, 43, 44, 45, 46, 48, 70, 116: // handshake_failure, bad_certificate … unknown_ca, protocol_version, certificate_required
		return true
	}
	return false
}

// finalHandshakeError carries a status, which grpc's picker treats as the
// final answer for the call: no retry, no waiting for ready.
type finalHandshakeError struct{ err error }

func (e finalHandshakeError) Error() string { return e.err.Error() }
func (e finalHandshakeError) Unwrap() error { return e.err }
func (e finalHandshakeError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.err.Error())
}
