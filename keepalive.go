package greeter

import (
	"time"

	"google.golang.org/grpc/keepalive"
)

// DefaultServerKeepalive returns the keepalive parameters [NewServer] uses
// unless [WithServerKeepalive] replaces them: after 2 minutes without any
// activity on a connection the server pings the client, and closes the
// connection if no answer comes within 20s, so that a client that vanished
// (crashed host, dropped NAT mapping) frees its connection and cancels its
// calls in under 2m20s, instead of TCP's hours. Connections are never closed
// for being idle or old (MaxConnectionIdle and MaxConnectionAge unset).
func DefaultServerKeepalive() keepalive.ServerParameters {
	return keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}
}

// DefaultKeepaliveEnforcement returns the policy [NewServer] applies to
// clients' keepalive pings unless [WithKeepaliveEnforcement] replaces it:
// pings at most every 5s are welcome, with or without calls in flight. That
// accepts every grpc-go client (they cannot ping more often than every 10s)
// where grpc's own default (5 minutes, not without calls) answers a client
// with keepalive on with GOAWAY "too_many_pings". A client that pings
// faster is still sent GOAWAY and disconnected, leaving others unaffected.
func DefaultKeepaliveEnforcement() keepalive.EnforcementPolicy {
	return keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}
}

// WithServerKeepalive sets the server's keepalive parameters; the default is
// [DefaultServerKeepalive]. Time is how long a connection may be silent
// before the server pings (grpc raises values below 1s to 1s), Timeout how
// long it waits for the answer before closing the connection.
// MaxConnectionIdle closes a connection with no call for that long (with a
// GOAWAY: clients reconnect when next needed); MaxConnectionAge closes any
// connection after that long, plus MaxConnectionAgeGrace for calls in
// flight, which spreads clients over new backends. p replaces the default
// whole, and a zero field means grpc's default (a 2h ping interval for
// Time): start from DefaultServerKeepalive() to change one field. [Register]
// ignores it.
func WithServerKeepalive(p keepalive.ServerParameters) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.res.keepalive = &p })
}

// WithKeepaliveEnforcement sets how often clients may ping; the default is
// [DefaultKeepaliveEnforcement]. A client pinging more often than
// p.MinTime (or at all without calls in flight, unless
// p.PermitWithoutStream) three times is sent GOAWAY with "too_many_pings"
// and disconnected. [Register] ignores it.
func WithKeepaliveEnforcement(p keepalive.EnforcementPolicy) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.res.enforcement = &p })
}

// WithClientKeepalive makes the client ping the server after p.Time without
// activity and close the connection (failing its calls with Unavailable) if
// no answer comes within p.Timeout: this detects a server or network path
// that died silently. grpc raises a Time below 10s to 10s.
//
// The default is grpc's: no client keepalive, because a server that enforces
// grpc's default policy (no pings more often than every 5 minutes, none
// without calls) disconnects clients that ping more. Against a greeter
// server, {Time: 30 * time.Second, Timeout: 10 * time.Second,
// PermitWithoutStream: true} is safe.
func WithClientKeepalive(p keepalive.ClientParameters) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.res.keepalive = &p })
}
