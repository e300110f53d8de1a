package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// unixPath returns the socket path of a unix: address, in grpc-go's target
// forms: unix:PATH (PATH relative or absolute) and unix:///ABSOLUTE_PATH. It
// reports ok=false for any other address, and an error for unix://HOST/PATH,
// which grpc-go refuses too.
func unixPath(addr string) (path string, ok bool, err error) {
	rest, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return "", false, nil
	}
	if p, ok := strings.CutPrefix(rest, "//"); ok {
		if !strings.HasPrefix(p, "/") {
			return "", true, fmt.Errorf("--addr %s: a unix socket has no host: use unix:/PATH or unix:///PATH", addr)
		}
		rest = p
	}
	if rest == "" {
		return "", true, fmt.Errorf("--addr %s: no socket path: use unix:/PATH or unix:///PATH", addr)
	}
	return rest, true, nil
}

// listen listens on addr, a host:port or a unix: address (see unixPath), and
// returns the listener with the target a client dials to reach it. A unix
// socket file left behind by a server that is gone is removed first; the
// listener removes its own when closed.
func listen(addr string) (lis net.Listener, target string, err error) {
	path, isUnix, err := unixPath(addr)
	switch {
	case err != nil:
		return nil, "", err
	case !isUnix:
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, "", err
		}
		return lis, lis.Addr().String(), nil
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, "", err
	}
	lis, err = net.Listen("unix", path)
	if err != nil {
		return nil, "", err
	}
	return lis, "unix:" + path, nil
}

// removeStaleSocket removes the unix socket at path when no server listens
// on it any more. It leaves alone, and reports, a file that is not a socket
// or a socket that a server still answers on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s exists and is not a unix socket: not removing it", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%s: another server is listening on this socket", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: cannot tell whether the socket is in use: %w", path, err)
	}
	return os.Remove(path)
}
