package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/grpc-greeter/greeter"
)

// serverTLSFlags are serve's TLS flags: with both set, serve speaks TLS.
type serverTLSFlags struct{ cert, key *string }

func addServerTLSFlags(fs *flag.FlagSet) serverTLSFlags {
	return serverTLSFlags{
		cert: fs.String("tls-cert", "", "serve TLS with this PEM certificate `file` (needs --tls-key); plaintext without"),
		key:  fs.String("tls-key", "", "PEM private key `file` of --tls-cert"),
	}
}

func (f serverTLSFlags) options() ([]greeter.ServerOption, error) {
	switch {
	case *f.cert == "" && *f.key == "":
		return nil, nil
	case *f.cert == "" || *f.key == "":
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(*f.cert, *f.key)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return []greeter.ServerOption{greeter.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})}, nil
}

// clientTLSFlags are the TLS flags of the commands that call a server.
type clientTLSFlags struct {
	on         *bool
	ca, server *string
}

func addClientTLSFlags(fs *flag.FlagSet) clientTLSFlags {
	return clientTLSFlags{
		on:     fs.Bool("tls", false, "use TLS, verifying the server against the system's roots (plaintext without)"),
		ca:     fs.String("tls-ca", "", "use TLS, verifying the server against the PEM CA certificates in `file`"),
		server: fs.String("tls-server-name", "", "with TLS, the `name` the server's certificate must carry (default: from --addr)"),
	}
}

// option returns WithTLS or, when no TLS flag is set, WithInsecure: the
// CLI's plaintext default is a choice made here, on the command line, never
// a silent fallback in the library.
func (f clientTLSFlags) option() (greeter.ClientOption, error) {
	if !*f.on && *f.ca == "" {
		if *f.server != "" {
			return nil, errors.New("--tls-server-name needs --tls or --tls-ca")
		}
		return greeter.WithInsecure(), nil
	}
	cfg := &tls.Config{ServerName: *f.server, MinVersion: tls.VersionTLS12}
	if *f.ca != "" {
		pem, err := os.ReadFile(*f.ca)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: no PEM certificate in %s", *f.ca)
		}
	}
	return greeter.WithTLS(cfg), nil
}
