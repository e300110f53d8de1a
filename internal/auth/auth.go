// Package auth checks who calls a server: the caller's identity from its
// client certificate, bearer tokens checked by a pluggable validator
// (constant-time for the static case), and grpc's authz policy engine
// wrapped so that a refusal says what to fix. Its constructors return plain
// grpc interceptors, in the manner of go-grpc-middleware.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// IdentityHeader is the request header that carries the identity a bearer
// token was issued to, for authorization policies to match: the server
// sets it after checking the token, and removes any value the caller sent.
const IdentityHeader = "x-greeter-identity"

// CertIdentity is the identity a certificate names, in the order grpc's
// authz policies match principals: the first URI SAN, else the first DNS
// SAN, else the subject.
func CertIdentity(c *x509.Certificate) string {
	switch {
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	}
	return c.Subject.String()
}

type tokenKey struct{}

// slot holds the identity a call's token was issued to, once checked. It
// is put in the call's context early in the chain ([UnarySlot]), so that
// an interceptor that runs before the token check (one that logs the call
// when it ends, say) reads the identity too.
type slot struct{ id string }

type slotKey struct{}

// UnarySlot gives each unary call a slot for the identity of its token:
// interceptors after it read the identity (with [Identity]) once the token
// check, further in, has run.
func UnarySlot(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(context.WithValue(ctx, slotKey{}, &slot{}), req)
}

// StreamSlot is UnarySlot for streams.
func StreamSlot(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx := context.WithValue(ss.Context(), slotKey{}, &slot{})
	return h(srv, &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: ctx})
}

// Identity returns the caller's identity in a server call's context: its
// verified client certificate's ([CertIdentity]), else the identity its
// bearer token was issued to, else "".
func Identity(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.VerifiedChains) > 0 && len(info.State.PeerCertificates) > 0 {
			return CertIdentity(info.State.PeerCertificates[0])
		}
	}
	if id, ok := ctx.Value(tokenKey{}).(string); ok {
		return id
	}
	if s, ok := ctx.Value(slotKey{}).(*slot); ok {
		return s.id
	}
	return ""
}

// Validator checks a bearer token and returns the identity it was issued
// to. An error with a gRPC status (PermissionDenied, say) reaches the
// caller as it is; any other error is Unauthenticated with a message that
// never repeats the token.
type Validator func(ctx context.Context, token string) (identity string, err error)

// Static returns a Validator that accepts the tokens of identities (identity
// to token), comparing in constant time: the SHA-256 of the token sent is
// compared with every token's, so the time taken tells neither which
// token nor how much of one matched.
func Static(identities map[string]string) (Validator, error) {
	type entry struct {
		identity string
		sum      [sha256.Size]byte
	}
	var entries []entry
	seen := map[[sha256.Size]byte]string{}
	for id, tok := range identities {
		switch {
		case id == "":
			return nil, errors.New("an empty identity")
		case tok == "":
			return nil, fmt.Errorf("identity %q has an empty token", id)
		case strings.ContainsAny(tok, " \t\r\n"):
			return nil, fmt.Errorf("identity %q has a token with white space, which no client can send", id)
		}
		sum := sha256.Sum256([]byte(tok))
		if other, ok := seen[sum]; ok {
			return nil, fmt.Errorf("identities %q and %q have the same token", other, id)
		}
		seen[sum] = id
		entries = append(entries, entry{id, sum})
	}
	if len(entries) == 0 {
		return nil, errors.New("no token given")
	}
	return func(_ context.Context, token string) (string, error) {
		sum := sha256.Sum256([]byte(token))
		found := ""
		for _, e := range entries {
			if subtle.ConstantTimeCompare(sum[:], e.sum[:]) == 1 {
				found = e.identity
			}
		}
		if found == "" {
			return "", errInvalidToken
		}
		return found, nil
	}, nil
}

var errInvalidToken = errors.New("invalid token")

// Skip reports whether a method is let through without a check.
type Skip func(fullMethod string) bool

// Tokens checks the bearer token of every call a Skip does not exempt, and
// removes any [IdentityHeader] the caller sent. With a nil validator it
// only removes the header.
type Tokens struct {
	Validate Validator
	Skip     Skip
	// SetHeader puts the identity a token was issued to in
	// [IdentityHeader], for an authorization policy to match.
	SetHeader bool
}

// check returns the context the handler gets, or the refusal.
func (t Tokens) check(ctx context.Context, method string) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get(IdentityHeader)) > 0 {
		md = md.Copy()
		delete(md, IdentityHeader)
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	if t.Validate == nil || (t.Skip != nil && t.Skip(method)) {
		return ctx, nil
	}
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return nil, status.Error(codes.Unauthenticated, "missing bearer token: send the metadata \"authorization: Bearer TOKEN\" (greeter.WithBearerToken; on the greeter CLI, call --token)")
	}
	if len(vals) > 1 {
		return nil, status.Error(codes.Unauthenticated, "more than one authorization header: send exactly one \"authorization: Bearer TOKEN\"")
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return nil, status.Error(codes.Unauthenticated, "malformed authorization header: want \"Bearer TOKEN\" (the scheme, one space, the token)")
	}
	id, err := t.Validate(ctx, token)
	if err != nil {
		if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
			return nil, err
		}
		return nil, status.Error(codes.Unauthenticated, "invalid bearer token: the server does not accept the token sent; check the token the client was given")
	}
	if id != "" && t.SetHeader {
		if md == nil {
			md = metadata.MD{}
		} else {
			md = md.Copy()
		}
		md.Set(IdentityHeader, id)
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	if s, ok := ctx.Value(slotKey{}).(*slot); ok {
		s.id = id
	}
	return context.WithValue(ctx, tokenKey{}, id), nil
}

// UnaryServerInterceptor checks the token of unary calls.
func (t Tokens) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, err := t.check(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// StreamServerInterceptor checks the token of streams.
func (t Tokens) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx, err := t.check(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return h(srv, &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: ctx})
	}
}

// Policy is what grpc's authz interceptors offer: its StaticInterceptor
// and FileWatcherInterceptor.
type Policy interface {
	UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error)
	StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error
}

// denied replaces authz's bare "unauthorized RPC request rejected" with
// who was refused what, and what to do.
func denied(ctx context.Context, method string, err error) error {
	if status.Code(err) != codes.PermissionDenied {
		return err
	}
	who := Identity(ctx)
	if who == "" {
		who = "an unidentified caller (no client certificate, no token)"
	} else {
		who = fmt.Sprintf("%q", who)
	}
	return status.Errorf(codes.PermissionDenied, "permission denied: the server's authorization policy does not allow %s to call %s; ask the server's operator for access, or call with an identity the policy allows", who, method)
}

// UnaryAuthz runs p's decision, and the handler only when p allows the
// call: an error from the handler is never taken for p's.
func UnaryAuthz(p Policy) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		allowed := false
		_, err := p.UnaryInterceptor(ctx, req, info, func(context.Context, any) (any, error) {
			allowed = true
			return nil, nil
		})
		if !allowed {
			return nil, denied(ctx, info.FullMethod, err)
		}
		return h(ctx, req)
	}
}

// StreamAuthz is UnaryAuthz for streams.
func StreamAuthz(p Policy) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		allowed := false
		err := p.StreamInterceptor(srv, ss, info, func(any, grpc.ServerStream) error {
			allowed = true
			return nil
		})
		if !allowed {
			return denied(ss.Context(), info.FullMethod, err)
		}
		return h(srv, ss)
	}
}
