package greeter_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/testpki"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// BenchmarkSecurity measures what a unary call costs over TLS on loopback
// TCP, one caller on one connection: plain grpc-go with credentials.NewTLS,
// greeter with the same certificate from files (WithTLSFiles), then with
// mutual TLS, a bearer token and an authorization policy added one by one.
// benchstat's -col /impl gives the ratios.
//
//	go test -run '^$' -bench '^BenchmarkSecurity$' -benchmem -count 6 .
func BenchmarkSecurity(b *testing.B) {
	dir := b.TempDir()
	ca := testpki.NewCA(b, "bench CA")
	caFile := testpki.Write(b, dir, "ca.pem", ca.PEM)
	srv := ca.Issue(b, testpki.Localhost())
	certFile, keyFile := testpki.WritePair(b, dir, "server", srv)
	clientCert, clientKey := testpki.WritePair(b, dir, "client", ca.Issue(b, testpki.Leaf{URIs: []string{"spiffe://greeter.test/admin"}}))
	tokens, err := greeter.StaticTokens(map[string]string{"admin": "bench-token"})
	if err != nil {
		b.Fatal(err)
	}
	const policy = `{"name": "bench", "allow_rules": [
		{"name": "admin", "source": {"principals": ["spiffe://greeter.test/admin"]}, "request": {"paths": ["/Greeter/*"], "headers": [{"key": "x-greeter-identity", "values": ["admin"]}]}}]}`

	listen := func(b *testing.B) (net.Listener, string) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		return lis, lis.Addr().String()
	}
	run := func(b *testing.B, call func(context.Context) error) {
		ctx := context.Background()
		for range 100 {
			if err := call(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := call(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.Run("impl=grpc-go-tls", func(b *testing.B) {
		lis, addr := listen(b)
		s := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{srv.TLS}})))
		greeterpb.RegisterGreeterServer(s, plainGreeter{})
		go s.Serve(lis)
		defer s.Stop()
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool()})))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		c := greeterpb.NewGreeterClient(cc)
		run(b, func(ctx context.Context) error {
			_, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: benchName})
			return err
		})
	})
	for _, tt := range []struct {
		name   string
		server []greeter.ServerOption
		client []greeter.ClientOption
	}{
		{"greeter-tls",
			[]greeter.ServerOption{greeter.WithTLSFiles(greeter.TLSFiles{CertFile: certFile, KeyFile: keyFile})},
			[]greeter.ClientOption{greeter.WithTLSFiles(greeter.TLSFiles{CAFile: caFile})}},
		{"greeter-mtls",
			[]greeter.ServerOption{greeter.WithTLSFiles(greeter.TLSFiles{CertFile: certFile, KeyFile: keyFile, CAFile: caFile})},
			[]greeter.ClientOption{greeter.WithTLSFiles(greeter.TLSFiles{CertFile: clientCert, KeyFile: clientKey, CAFile: caFile})}},
		{"greeter-mtls-token",
			[]greeter.ServerOption{greeter.WithTLSFiles(greeter.TLSFiles{CertFile: certFile, KeyFile: keyFile, CAFile: caFile}),
				greeter.WithTokenValidator(tokens)},
			[]greeter.ClientOption{greeter.WithTLSFiles(greeter.TLSFiles{CertFile: clientCert, KeyFile: clientKey, CAFile: caFile}), greeter.WithBearerToken("bench-token")}},
		{"greeter-mtls-authz-token",
			[]greeter.ServerOption{greeter.WithTLSFiles(greeter.TLSFiles{CertFile: certFile, KeyFile: keyFile, CAFile: caFile}),
				greeter.WithAuthzPolicy(policy), greeter.WithTokenValidator(tokens)},
			[]greeter.ClientOption{greeter.WithTLSFiles(greeter.TLSFiles{CertFile: clientCert, KeyFile: clientKey, CAFile: caFile}), greeter.WithBearerToken("bench-token")}},
	} {
		b.Run("impl="+tt.name, func(b *testing.B) {
			lis, addr := listen(b)
			s, err := greeter.NewServer(tt.server...)
			if err != nil {
				b.Fatal(err)
			}
			go s.Serve(lis)
			defer func() {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				_ = s.Shutdown(ctx)
			}()
			c, err := greeter.NewClient(addr, append(tt.client, greeter.WithDefaultTimeout(0))...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			run(b, func(ctx context.Context) error {
				_, err := c.SayHello(ctx, benchName)
				return err
			})
		})
	}
}
