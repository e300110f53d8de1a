package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// grpcModule is grpc-go's module path, looked up among the binary's
// dependencies.
const grpcModule = "google.golang.org/grpc"

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "", stderr)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(stderr, "greeter version: no build information in this binary")
		return 1
	}
	printVersion(stdout, bi)
	return 0
}

// printVersion writes the versions of the main module (greeter), grpc-go
// and Go that bi records, one per line.
func printVersion(w io.Writer, bi *debug.BuildInfo) {
	fmt.Fprintf(w, "greeter %s\n", mainVersion(bi))
	fmt.Fprintf(w, "grpc-go %s\n", depVersion(bi, grpcModule))
	fmt.Fprintf(w, "go      %s %s/%s\n", bi.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// mainVersion is the main module's version: a release (v1.2.0), the
// pseudo-version the go command stamps in a build from a git checkout
// (v0.0.0-20260101000000-abcdef012345, +dirty with local changes), or
// "(devel)" when there was nothing to stamp, then with the commit if known.
func mainVersion(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	if v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return v
	}
	if modified == "true" {
		rev += ", modified"
	}
	return fmt.Sprintf("%s (commit %s)", v, rev)
}

// depVersion is the version of dependency path in bi, with its replacement
// if it has one, or "unknown" when the binary does not record it.
func depVersion(bi *debug.BuildInfo, path string) string {
	for _, d := range bi.Deps {
		if d.Path != path {
			continue
		}
		if r := d.Replace; r != nil {
			if r.Version == "" {
				return fmt.Sprintf("%s => %s", d.Version, r.Path)
			}
			return fmt.Sprintf("%s => %s %s", d.Version, r.Path, r.Version)
		}
		return d.Version
	}
	return "unknown"
}
