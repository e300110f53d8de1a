// Package resolver is greeter's name resolver, for the scheme "greeter":
//
//	greeter:///127.0.0.1:5001,127.0.0.1:5002   a static list of addresses
//	greeter://file/etc/greeter/backends        a file of addresses, watched
//
// The file holds one host:port a line; blank lines and lines starting with
// # are ignored. It is read when the resolver is built, then again every
// interval and whenever grpc asks (after a connection failed); a change
// reaches the load balancer without a restart. A file that cannot be read
// or holds a bad line is reported to grpc as a resolver error and the last
// good list stays in use. Replace the file atomically (write a new one,
// then rename it over the old) so that a half-written file is never read.
//
// A Builder is meant for one client, with grpc.WithResolvers: it is never
// registered globally.
package resolver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	grpcresolver "google.golang.org/grpc/resolver"
)

// Scheme is the scheme of greeter's targets.
const Scheme = "greeter"

// FileAuthority is the authority of a target that names a file:
// greeter://file/PATH.
const FileAuthority = "file"

// DefaultInterval is how often a watched file is read again.
const DefaultInterval = time.Second

// Builder builds greeter's resolvers.
type Builder struct {
	// Interval is how often a watched file is read again; DefaultInterval
	// when zero or less.
	Interval time.Duration
}

// Scheme returns [Scheme].
func (*Builder) Scheme() string { return Scheme }

// Build starts resolving target: a static list at once, a file by reading
// it now and watching it until Close.
func (b *Builder) Build(target grpcresolver.Target, cc grpcresolver.ClientConn, _ grpcresolver.BuildOptions) (grpcresolver.Resolver, error) {
	path, list, err := Parse(target.URL.Host, target.URL.Path)
	if err != nil {
		return nil, err
	}
	if path == "" {
		if err := cc.UpdateState(state(list)); err != nil {
			return nil, err
		}
		return static{}, nil
	}
	interval := b.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cc: cc, path: path, interval: interval, now: make(chan struct{}, 1), cancel: cancel}
	w.read() // the first list before any call waits for one
	w.wg.Add(1)
	go w.run(ctx)
	return w, nil
}

// Parse splits a greeter target's authority and path into a file to watch
// (authority "file") or a static list of addresses (no authority).
func Parse(authority, path string) (file string, list []string, err error) {
	switch authority {
	case FileAuthority:
		if path == "" || path == "/" {
			return "", nil, errors.New("greeter://file/PATH: no file named; give its absolute path, as in greeter://file/etc/greeter/backends")
		}
		return path, nil, nil
	case "":
		if strings.TrimPrefix(path, "/") == "" {
			return "", nil, errors.New("greeter:///HOST:PORT,...: no address; list them, as in greeter:///127.0.0.1:5001,127.0.0.1:5002")
		}
		list, err := ParseList(strings.Split(strings.TrimPrefix(path, "/"), ","))
		if err != nil {
			return "", nil, fmt.Errorf("greeter:///HOST:PORT,...: %w", err)
		}
		return "", list, nil
	default:
		return "", nil, fmt.Errorf("greeter://%s/...: unknown authority %q; want greeter:///HOST:PORT,HOST:PORT for a list or greeter://file/PATH for a file of addresses", authority, authority)
	}
}

// ParseList checks addresses, each a host:port, and returns them with
// surrounding spaces trimmed. An empty list, a missing port or a repeated
// address is an error that names it.
func ParseList(addrs []string) ([]string, error) {
	var out []string
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("address %q: want HOST:PORT, as in 127.0.0.1:50051", a)
		}
		if host == "" {
			return nil, fmt.Errorf("address %q: no host", a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("address %q: port %q: want a number from 1 to 65535", a, port)
		}
		for _, seen := range out {
			if seen == a {
				return nil, fmt.Errorf("address %q given twice", a)
			}
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("no address")
	}
	return out, nil
}

// parseFile reads a file of addresses: one a line, # comments.
func parseFile(b []byte) ([]string, error) {
	var addrs []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		addrs = append(addrs, line)
	}
	return ParseList(addrs)
}

func state(addrs []string) grpcresolver.State {
	eps := make([]grpcresolver.Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = grpcresolver.Endpoint{Addresses: []grpcresolver.Address{{Addr: a}}}
	}
	return grpcresolver.State{Endpoints: eps}
}

// static is a list's resolver: nothing to do after Build.
type static struct{}

func (static) ResolveNow(grpcresolver.ResolveNowOptions) {}
func (static) Close()                                    {}

// watcher reads a file of addresses and tells grpc when it changes.
type watcher struct {
	cc       grpcresolver.ClientConn
	path     string
	interval time.Duration
	now      chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	last []byte // the contents last sent to grpc; only run's goroutine after Build
	sent bool
}

func (w *watcher) run(ctx context.Context) {
	defer w.wg.Done()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.now:
		}
		w.read()
	}
}

// read reads the file and sends its list to grpc when it changed, or the
// reason it is unusable.
func (w *watcher) read() {
	b, err := os.ReadFile(w.path)
	if err != nil {
		w.cc.ReportError(fmt.Errorf("greeter resolver: %w", err))
		w.sent = false // report the list again once the file is back
		return
	}
	if w.sent && bytes.Equal(b, w.last) {
		return
	}
	addrs, err := parseFile(b)
	if err != nil {
		w.cc.ReportError(fmt.Errorf("greeter resolver: %s: %w", w.path, err))
		w.sent = false
		return
	}
	w.last, w.sent = b, true
	// An error here is the balancer refusing the list; grpc then asks
	// again through ResolveNow.
	_ = w.cc.UpdateState(state(addrs))
}

// ResolveNow reads the file again soon: grpc asks after a connection
// failed.
func (w *watcher) ResolveNow(grpcresolver.ResolveNowOptions) {
	select {
	case w.now <- struct{}{}:
	default:
	}
}

// Close stops watching and returns when the watcher has.
func (w *watcher) Close() {
	w.cancel()
	w.wg.Wait()
}
