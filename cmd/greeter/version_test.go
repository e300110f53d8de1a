package main

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		code, out, errOut := runCmd(args...)
		if code != 0 || errOut != "" {
			t.Errorf("greeter %v: exit %d, stderr %q; want 0 and nothing", args, code, errOut)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "greeter ") ||
			!strings.HasPrefix(lines[1], "grpc-go v") ||
			lines[2] != "go      "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
			t.Errorf("greeter %v printed %q; want greeter VERSION, grpc-go vX.Y.Z, go %s", args, out, runtime.Version())
		}
	}
	if code, _, _ := runCmd("version", "extra"); code != 2 {
		t.Errorf("greeter version extra: exit %d, want 2", code)
	}
}

func TestPrintVersion(t *testing.T) {
	grpcDep := &debug.Module{Path: grpcModule, Version: "v1.85.0"}
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "916579d"}, {Key: "vcs.modified", Value: "true"}}
	tests := []struct {
		name               string
		bi                 debug.BuildInfo
		wantMain, wantGRPC string
	}{
		{"release",
			debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Deps: []*debug.Module{grpcDep}},
			"greeter v1.2.0", "grpc-go v1.85.0"},
		{"stamped from a checkout",
			debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261126040027-916579d1d7ee+dirty"}, Deps: []*debug.Module{grpcDep}, Settings: vcs},
			"greeter v0.0.0-20261126040027-916579d1d7ee+dirty", "grpc-go v1.85.0"},
		{"devel with its commit",
			debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Deps: []*debug.Module{grpcDep}, Settings: vcs},
			"greeter (devel) (commit 916579d, modified)", "grpc-go v1.85.0"},
		{"devel, no vcs, grpc replaced by a directory",
			debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Deps: []*debug.Module{{Path: grpcModule, Version: "v1.85.0", Replace: &debug.Module{Path: "../grpc-go"}}}},
			"greeter (devel)", "grpc-go v1.85.0 => ../grpc-go"},
		{"no grpc",
			debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}},
			"greeter v1.2.0", "grpc-go unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.bi.GoVersion = "go1.26.0"
			var b bytes.Buffer
			printVersion(&b, &tt.bi)
			want := tt.wantMain + "\n" + tt.wantGRPC + "\ngo      go1.26.0 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
			if b.String() != want {
				t.Errorf("printVersion = %q, want %q", b.String(), want)
			}
		})
	}
}
