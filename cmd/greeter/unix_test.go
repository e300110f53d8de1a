package main

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// socketPath returns a path for a unix socket in a directory of the test's.
func socketPath(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "g.sock")
	if len(path) > 100 { // sun_path holds 108 bytes
		t.Skipf("temporary directory too deep for a unix socket path: %s", path)
	}
	return path
}

// TestUnixSocket serves on a unix socket and calls, checks and loads it
// there, in both of grpc-go's forms of the address.
func TestUnixSocket(t *testing.T) {
	checkLeaks(t)
	path := socketPath(t)
	addr, stop, stderr := startServe(t, "--addr", "unix:"+path)
	if addr != "unix:"+path {
		t.Fatalf("serve says it serves on %q, want unix:%s", addr, path)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("%s after serve started: %v, %v; want a socket", path, fi, err)
	}
	for _, target := range []string{"unix:" + path, "unix://" + path} {
		if code, out, errOut := runCmd("call", "--addr", target, "--name", "socket"); code != 0 || out != "Hello, socket!\n" {
			t.Errorf("call --addr %s: exit %d, stdout %q, stderr %q; want 0, Hello, socket!", target, code, out, errOut)
		}
		if code, out, errOut := runCmd("health", "--addr", target); code != 0 || out != "SERVING\n" {
			t.Errorf("health --addr %s: exit %d, stdout %q, stderr %q; want 0, SERVING", target, code, out, errOut)
		}
	}
	if rep := runBenchJSON(t, "--addr", addr, "--total", "20", "--concurrency", "2"); rep.OK != 20 {
		t.Errorf("bench --addr %s: %d of 20 calls OK, errors %v %q", addr, rep.OK, rep.Errors, rep.ErrorSamples)
	}

	// The socket is in use: a second server must not take it over.
	code, _, errOut := runCmd("serve", "--addr", "unix:"+path)
	if code != 1 || !strings.Contains(errOut, "another server is listening") {
		t.Errorf("a second serve on %s: exit %d, stderr %q; want 1, the socket in use", path, code, errOut)
	}

	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, stderr)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s after serve stopped: %v; want it removed", path, err)
	}

	// Nothing listens there now.
	if code, _, errOut := runCmd("call", "--addr", "unix:"+path); code != 1 || !strings.HasPrefix(errOut, "Unavailable: ") || !strings.Contains(errOut, "no such file") {
		t.Errorf("call to a socket that is gone: exit %d, stderr %q; want 1, Unavailable, no such file", code, errOut)
	}
	if code, _, errOut := runCmd("health", "--addr", "unix:"+path); code != 2 || !strings.Contains(errOut, "no connection to unix:"+path) {
		t.Errorf("health of a socket that is gone: exit %d, stderr %q; want 2, no connection", code, errOut)
	}
}

// TestUnixSocketStale checks that serve replaces a socket file left behind
// by a server that is gone, and refuses to touch a file that is not a
// socket.
func TestUnixSocketStale(t *testing.T) {
	path := socketPath(t)
	lis, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	lis.SetUnlinkOnClose(false)
	lis.Close() // as a server killed at once leaves it
	addr, _, _ := startServe(t, "--addr", "unix:"+path)
	if code, out, errOut := runCmd("call", "--addr", addr); code != 0 || out != "Hello, world!\n" {
		t.Errorf("call over a socket that replaced a stale one: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	file := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd("serve", "--addr", "unix:"+file)
	if code != 1 || !strings.Contains(errOut, "is not a unix socket") {
		t.Errorf("serve on a regular file: exit %d, stderr %q; want 1, not a unix socket", code, errOut)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the regular file after serve: %q, %v; want it untouched", b, err)
	}
}

func TestUnixAddressWithHost(t *testing.T) {
	for _, addr := range []string{"unix://host/g.sock", "unix:"} {
		code, _, errOut := runCmd("serve", "--addr", addr)
		if code != 2 || !strings.Contains(errOut, "--addr "+addr+": ") || !strings.Contains(errOut, "use unix:/PATH or unix:///PATH") {
			t.Errorf("serve --addr %s: exit %d, stderr %q; want 2 and the forms to use", addr, code, errOut)
		}
	}
}
