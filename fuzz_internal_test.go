package greeter

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// The request path: any bytes a client sends decode to a HelloRequest or
// to an error, never a panic, and a name that decodes is valid or refused
// with InvalidArgument.
func FuzzRequestCodec(f *testing.F) {
	f.Add([]byte{0x0a, 0x05, 'w', 'o', 'r', 'l', 'd'})
	f.Add([]byte{0x0a, 0x02, 0xff, 0xfe})
	f.Add([]byte{0x0a, 0x7f, 0x01})
	f.Add([]byte{0x10, 0x01, 0x0a, 0x00})
	codec := requestCodec{encoding.GetCodecV2(proto.Name)}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(greeterpb.HelloRequest)
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, req); err != nil {
			return
		}
		err := validateName(req.GetName())
		valid := req.GetName() != "" && len(req.GetName()) <= MaxNameLength && utf8.ValidString(req.GetName())
		if valid != (err == nil) || (err != nil && status.Code(err) != codes.InvalidArgument) {
			t.Fatalf("name %q: validateName = %v", req.GetName(), err)
		}
	})
}

// Targets: any string gives an address or none, never a panic, and a
// target without port is caught.
func FuzzTargetAddr(f *testing.F) {
	for _, s := range []string{"localhost:50051", "127.0.0.1", "[::1]", "dns:///h:1", "dns://8.8.8.8/h", "passthrough:///bufnet", "unix:/tmp/s", "xds:///x", "", ":", "[::1",
		"greeter:///127.0.0.1:1,[::1]:2", "greeter://file/etc/x", "greeter:///", "GREETER:///h:1,h:1", "greeter://file"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		addr, noPort := targetAddr(target)
		if noPort && !strings.HasSuffix(addr, ":443") {
			t.Fatalf("targetAddr(%q) = %q, no port; want the :443 grpc would dial", target, addr)
		}
		// greeter: targets are checked without a panic, and an error
		// always names the target.
		if err := checkGreeterTarget(target); err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", target)) {
			t.Fatalf("checkGreeterTarget(%q) = %v; want the target named", target, err)
		}
	})
}

// Service configs: any JSON object gets health checking added; anything
// else is an error, never a panic.
func FuzzServiceConfigWithHealthCheck(f *testing.F) {
	f.Add(DefaultServiceConfig, ServiceName)
	f.Add(`{}`, "")
	f.Add(`[]`, "x")
	f.Add(`null`, "")
	f.Fuzz(func(t *testing.T, sc, service string) {
		out, err := ServiceConfigWithHealthCheck(sc, service)
		if err != nil {
			return
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil || m["healthCheckConfig"] == nil {
			t.Fatalf("ServiceConfigWithHealthCheck(%q) = %q: not a config with health checking (%v)", sc, out, err)
		}
	})
}

// Deadline policies: validate accepts exactly the policies that cannot
// refuse every call.
func FuzzDeadlinePolicy(f *testing.F) {
	f.Add(int64(0), int64(0), int64(0))
	f.Add(int64(1e9), int64(2e9), int64(1e7))
	f.Add(int64(-1), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, def, maxD, minB int64) {
		p := DeadlinePolicy{Default: durationOf(def), Max: durationOf(maxD), MinBudget: durationOf(minB)}
		if p.validate("fuzz") != nil {
			return
		}
		if p.Default < 0 || p.Max < 0 || p.MinBudget < 0 || (p.Max > 0 && (p.Default > p.Max || p.MinBudget > p.Max)) {
			t.Fatalf("%+v accepted", p)
		}
	})
}

func durationOf(n int64) time.Duration { return time.Duration(n) }
