package resolver

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	grpcresolver "google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const defaultTestTimeout = 10 * time.Second

// recorder is the channel's side of a resolver: it records what the
// resolver tells it.
type recorder struct {
	grpcresolver.ClientConn
	mu      sync.Mutex
	changed chan struct{}
	addrs   [][]string
	errs    []error
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 16)} }

func (r *recorder) UpdateState(s grpcresolver.State) error {
	var addrs []string
	for _, e := range s.Endpoints {
		addrs = append(addrs, e.Addresses[0].Addr)
	}
	r.mu.Lock()
	r.addrs = append(r.addrs, addrs)
	r.mu.Unlock()
	r.changed <- struct{}{}
	return nil
}

func (r *recorder) ReportError(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	r.changed <- struct{}{}
}

func (r *recorder) ParseServiceConfig(string) *serviceconfig.ParseResult { return nil }

func (r *recorder) wait(t *testing.T) (addrs [][]string, errs []error) {
	t.Helper()
	select {
	case <-r.changed:
	case <-time.After(defaultTestTimeout):
		t.Fatal("the resolver said nothing")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addrs, r.errs
}

func build(t *testing.T, target string, b *Builder, cc *recorder) grpcresolver.Resolver {
	t.Helper()
	u, err := parseTarget(target)
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Build(u, cc, grpcresolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func parseTarget(s string) (grpcresolver.Target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return grpcresolver.Target{}, err
	}
	return grpcresolver.Target{URL: *u}, nil
}

func TestStaticList(t *testing.T) {
	cc := newRecorder()
	build(t, "greeter:///127.0.0.1:1, [::1]:2", &Builder{}, cc)
	addrs, _ := cc.wait(t)
	if got := strings.Join(addrs[0], " "); got != "127.0.0.1:1 [::1]:2" {
		t.Errorf("addresses = %q", got)
	}
}

// The file is read at Build, again on ResolveNow, and a bad or missing
// file is an error that keeps the last list.
func TestWatchedFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "backends")
	cc := newRecorder()
	// An interval longer than the test: every read is one asked for.
	r := build(t, "greeter://file"+file, &Builder{Interval: time.Hour}, cc)
	if _, errs := cc.wait(t); len(errs) != 1 || !strings.Contains(errs[0].Error(), "no such file") {
		t.Fatalf("errors for a missing file = %v", errs)
	}

	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		r.ResolveNow(grpcresolver.ResolveNowOptions{})
	}
	write("# two\n127.0.0.1:1\n\n127.0.0.1:2\n")
	if addrs, _ := cc.wait(t); len(addrs) != 1 || strings.Join(addrs[0], " ") != "127.0.0.1:1 127.0.0.1:2" {
		t.Fatalf("updates = %v", addrs)
	}
	write("127.0.0.1\n")
	if addrs, errs := cc.wait(t); len(addrs) != 1 || len(errs) != 2 || !strings.Contains(errs[1].Error(), "want HOST:PORT") {
		t.Fatalf("after a bad line: updates %v, errors %v; want an error and no update", addrs, errs)
	}
	write("127.0.0.1:3\n")
	if addrs, _ := cc.wait(t); len(addrs) != 2 || strings.Join(addrs[1], " ") != "127.0.0.1:3" {
		t.Fatalf("updates = %v", addrs)
	}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct{ authority, path, want string }{
		{"", "/a:1,b:2", ""},
		{"", "/", "no address"},
		{"", "/a:1,,b:2", `address ""`},
		{"", "/a:0", "from 1 to 65535"},
		{"", "/:80", "no host"},
		{"", "/a:1,a:1", "given twice"},
		{"file", "/etc/x", ""},
		{"file", "", "no file named"},
		{"dns", "/a:1", "unknown authority"},
	} {
		_, _, err := Parse(tt.authority, tt.path)
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q, %q) = %v; want %q", tt.authority, tt.path, err, tt.want)
		}
	}
}
