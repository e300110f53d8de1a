package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"github.com/grpc-greeter/greeter"
)

// securityFlags are serve's flags for who may call: plaintext beyond
// loopback, bearer tokens, an authorization policy, a rate limit.
type securityFlags struct {
	insecure    *bool
	tokenFile   *string
	policy      *string
	policyEvery *time.Duration
	rate        *float64
	burst       *int
	tlsOn       func() bool
}

func addSecurityFlags(fs *flag.FlagSet, tlsFlags serverTLSFlags) *securityFlags {
	f := &securityFlags{
		insecure:    fs.Bool("insecure", false, "allow plaintext on an address other hosts can reach (:50051, 0.0.0.0, a LAN address), e.g. behind a proxy or mesh that adds TLS; without it serve refuses plaintext beyond loopback"),
		tokenFile:   fs.String("token-file", "", "require a bearer token on every call but health checks: the `file` has one \"IDENTITY TOKEN\" pair a line (# comments); needs TLS (or --insecure)"),
		policy:      fs.String("authz-policy", "", "authorize every call with the gRPC authorization policy (JSON) in `file`, re-read every --authz-refresh"),
		policyEvery: fs.Duration("authz-refresh", greeter.DefaultAuthzRefresh, "how often --authz-policy is re-read"),
		rate:        fs.Float64("rate-limit", 0, "allow each client (its certificate's or token's identity, else its IP) `R` calls a second, answering ResourceExhausted with a retry delay beyond it (0: no limit)"),
		burst:       fs.Int("rate-burst", 0, "`N` calls a client may make at once under --rate-limit (default: the rate, at least 1)"),
		tlsOn:       tlsFlags.on,
	}
	return f
}

func (f *securityFlags) options() ([]greeter.ServerOption, error) {
	var opts []greeter.ServerOption
	if *f.insecure && f.tlsOn() {
		return nil, errors.New("--insecure and --tls-cert both given: --insecure allows plaintext; choose one")
	}
	if *f.tokenFile != "" {
		if !f.tlsOn() && !*f.insecure {
			return nil, errors.New("--token-file without TLS would let tokens travel in plaintext: add --tls-cert and --tls-key (or --insecure when a proxy in front adds TLS)")
		}
		v, err := readTokenFile(*f.tokenFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, greeter.WithTokenValidator(v))
	}
	if *f.policy != "" {
		if *f.policyEvery <= 0 {
			return nil, errors.New("--authz-refresh must be positive")
		}
		opts = append(opts, greeter.WithAuthzPolicyFile(*f.policy, *f.policyEvery))
	}
	switch {
	case math.IsNaN(*f.rate) || math.IsInf(*f.rate, 0):
		return nil, fmt.Errorf("--rate-limit %v: want a number of calls a second", *f.rate)
	case *f.rate > 0:
		burst := *f.burst
		if burst == 0 {
			burst = max(1, int(math.Ceil(min(*f.rate, math.MaxInt32))))
		}
		opts = append(opts, greeter.WithRateLimit(*f.rate, burst))
	case *f.burst > 0:
		return nil, errors.New("--rate-burst needs --rate-limit")
	}
	return opts, nil
}

// checkListener refuses plaintext on an address other hosts can reach
// unless --insecure says so.
func (f *securityFlags) checkListener(flagAddr string, addr net.Addr) error {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || f.tlsOn() || *f.insecure || tcp.IP.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to serve plaintext on %s, which other hosts can reach: add --tls-cert and --tls-key, or --insecure if plaintext is intended (a proxy or mesh in front adds TLS); a loopback address such as localhost:50051 needs neither", flagAddr)
}

// checkAddr is checkListener before listening, for the addresses whose
// text says their reach: an empty or unspecified host, or an IP. A host
// name is checked once resolved and listened on, by checkListener.
func (f *securityFlags) checkAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil // a unix socket, or an error listening reports
	}
	ip := net.ParseIP(host)
	switch {
	case host == "":
		ip = net.IPv4zero
	case ip == nil:
		return nil
	}
	return f.checkListener(addr, &net.TCPAddr{IP: ip})
}

// checkAdmin refuses --admin-addr beyond loopback unless --insecure says
// so: the admin services (channelz, CSDS, reflection) are plaintext and
// answer anyone, about every connection of the process.
func (f *securityFlags) checkAdmin(addr string) error {
	if addr == "" || *f.insecure {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil // listening reports it
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to serve the admin services on --admin-addr %s, which other hosts may reach: they are plaintext and unauthenticated and describe every connection of the process; bind them to loopback (localhost:PORT) and reach them through an SSH tunnel or kubectl port-forward, or add --insecure to expose them", addr)
}

// readTokenFile reads "IDENTITY TOKEN" lines. Its errors name the line,
// never the token.
func readTokenFile(path string) (greeter.TokenValidator, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	tokens := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("--token-file %s: line %d: want \"IDENTITY TOKEN\" (two fields), got %d fields", path, n, len(fields))
		}
		if _, dup := tokens[fields[0]]; dup {
			return nil, fmt.Errorf("--token-file %s: line %d: identity %q given twice", path, n, fields[0])
		}
		tokens[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--token-file %s: %w", path, err)
	}
	v, err := greeter.StaticTokens(tokens)
	if err != nil {
		return nil, fmt.Errorf("--token-file %s: %w", path, err)
	}
	return v, nil
}
