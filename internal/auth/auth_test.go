package auth

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestCertIdentity(t *testing.T) {
	u, _ := url.Parse("spiffe://example.org/admin")
	for _, tt := range []struct {
		cert *x509.Certificate
		want string
	}{
		{&x509.Certificate{URIs: []*url.URL{u}, DNSNames: []string{"a.example"}, Subject: pkix.Name{CommonName: "c"}}, "spiffe://example.org/admin"},
		{&x509.Certificate{DNSNames: []string{"a.example", "b.example"}, Subject: pkix.Name{CommonName: "c"}}, "a.example"},
		{&x509.Certificate{Subject: pkix.Name{CommonName: "c", Organization: []string{"o"}}}, "CN=c,O=o"},
	} {
		if got := CertIdentity(tt.cert); got != tt.want {
			t.Errorf("CertIdentity = %q, want %q", got, tt.want)
		}
	}
}

func TestTokens(t *testing.T) {
	v, err := Static(map[string]string{"alice": "a-token", "bob": "b-token"})
	if err != nil {
		t.Fatal(err)
	}
	tokens := Tokens{Validate: v, Skip: func(m string) bool { return m == "/health" }, SetHeader: true}
	var got context.Context
	h := func(ctx context.Context, _ any) (any, error) { got = ctx; return nil, nil }
	call := func(method string, md ...string) error {
		got = nil
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(md...))
		_, err := tokens.UnaryServerInterceptor()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, h)
		return err
	}
	for _, tt := range []struct {
		md   []string
		code codes.Code
	}{
		{nil, codes.Unauthenticated},
		{[]string{"authorization", "Bearer c-token"}, codes.Unauthenticated},
		{[]string{"authorization", "bearer"}, codes.Unauthenticated},
		{[]string{"authorization", "Bearer a-token", "authorization", "Bearer b-token"}, codes.Unauthenticated},
		{[]string{"authorization", "Bearer b-token"}, codes.OK},
		{[]string{"authorization", "bearer b-token"}, codes.OK},
	} {
		if err := call("/m", tt.md...); status.Code(err) != tt.code {
			t.Errorf("%q: %v, want %v", tt.md, err, tt.code)
		}
	}
	if err := call("/m", "authorization", "Bearer a-token", IdentityHeader, "bob"); err != nil || Identity(got) != "alice" {
		t.Fatalf("alice's token: %v, identity %q", err, Identity(got))
	}
	if h := metadata.ValueFromIncomingContext(got, IdentityHeader); len(h) != 1 || h[0] != "alice" {
		t.Errorf("identity header %q, want [alice]: the caller's own value must go", h)
	}
	if err := call("/health", IdentityHeader, "bob"); err != nil {
		t.Fatalf("skipped method: %v", err)
	}
	if h := metadata.ValueFromIncomingContext(got, IdentityHeader); len(h) != 0 || Identity(got) != "" {
		t.Errorf("a skipped call kept the caller's identity header %q", h)
	}
}

// TestIdentityBeforeTheCheck: an interceptor that runs before the token
// check reads the identity after the call, through the slot Slots puts in
// the call's context.
func TestIdentityBeforeTheCheck(t *testing.T) {
	v, err := Static(map[string]string{"alice": "a-token"})
	if err != nil {
		t.Fatal(err)
	}
	check := Tokens{Validate: v}.UnaryServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: "/m"}
	var before, after string
	// slot, then a logger, then the check.
	logger := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		before = Identity(ctx)
		resp, err := h(ctx, req)
		after = Identity(ctx)
		return resp, err
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer a-token"))
	_, err = UnarySlot(ctx, nil, info, func(ctx context.Context, req any) (any, error) {
		return logger(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return check(ctx, req, info, func(context.Context, any) (any, error) { return nil, nil })
		})
	})
	if err != nil || before != "" || after != "alice" {
		t.Fatalf("err %v; the logger saw %q before the check and %q after; want \"\" and alice", err, before, after)
	}
}
