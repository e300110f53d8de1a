package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"time"

	"github.com/grpc-greeter/greeter"
)

// serverTLSFlags are serve's TLS flags: with --tls-cert and --tls-key,
// serve speaks TLS; --tls-client-ca adds mutual TLS.
type serverTLSFlags struct {
	cert, key, clientCA *string
	refresh             *time.Duration
}

func addServerTLSFlags(fs *flag.FlagSet) serverTLSFlags {
	return serverTLSFlags{
		cert:     fs.String("tls-cert", "", "serve TLS with this PEM certificate `file` (needs --tls-key); plaintext without"),
		key:      fs.String("tls-key", "", "PEM private key `file` of --tls-cert"),
		clientCA: fs.String("tls-client-ca", "", "mutual TLS: require every client to present a certificate signed by a CA in this PEM `file`"),
		refresh:  fs.Duration("tls-refresh", greeter.DefaultTLSRefresh, "re-read --tls-cert, --tls-key and --tls-client-ca this often: renewed files take effect for new connections without a restart"),
	}
}

// on reports whether the flags ask for TLS.
func (f serverTLSFlags) on() bool { return *f.cert != "" || *f.key != "" }

func (f serverTLSFlags) options() ([]greeter.ServerOption, error) {
	switch {
	case !f.on() && *f.clientCA != "":
		return nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	case !f.on():
		return nil, nil
	case *f.cert == "" || *f.key == "":
		return nil, errors.New("--tls-cert and --tls-key go together")
	case *f.refresh <= 0:
		return nil, errors.New("--tls-refresh must be positive")
	}
	return []greeter.ServerOption{greeter.WithTLSFiles(greeter.TLSFiles{
		CertFile: *f.cert, KeyFile: *f.key, CAFile: *f.clientCA, Refresh: *f.refresh,
	})}, nil
}

// clientTLSFlags are the TLS flags of the commands that call a server.
type clientTLSFlags struct {
	on                    *bool
	ca, server, cert, key *string
}

func addClientTLSFlags(fs *flag.FlagSet) clientTLSFlags {
	return clientTLSFlags{
		on:     fs.Bool("tls", false, "use TLS, verifying the server against the system's roots (plaintext without)"),
		ca:     fs.String("tls-ca", "", "use TLS, verifying the server against the PEM CA certificates in `file`"),
		server: fs.String("tls-server-name", "", "with TLS, the `name` the server's certificate must carry (default: from --addr)"),
		cert:   fs.String("tls-cert", "", "use TLS and present this PEM client certificate `file` to a server that asks for one (mutual TLS; needs --tls-key)"),
		key:    fs.String("tls-key", "", "PEM private key `file` of --tls-cert"),
	}
}

// secure reports whether the flags ask for TLS.
func (f clientTLSFlags) secure() bool { return *f.on || *f.ca != "" || *f.cert != "" || *f.key != "" }

// option returns the TLS option or, when no TLS flag is set, WithInsecure:
// the CLI's plaintext default is a choice made here, on the command line,
// never a silent fallback in the library.
func (f clientTLSFlags) option() (greeter.ClientOption, error) {
	switch {
	case !f.secure() && *f.server != "":
		return nil, errors.New("--tls-server-name needs --tls or --tls-ca")
	case !f.secure():
		return greeter.WithInsecure(), nil
	case (*f.cert == "") != (*f.key == ""):
		return nil, errors.New("--tls-cert and --tls-key go together")
	case *f.ca == "" && *f.cert == "":
		return greeter.WithTLS(&tls.Config{ServerName: *f.server, MinVersion: tls.VersionTLS12}), nil
	}
	return greeter.WithTLSFiles(greeter.TLSFiles{CertFile: *f.cert, KeyFile: *f.key, CAFile: *f.ca, ServerName: *f.server}), nil
}
