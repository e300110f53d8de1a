package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
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

// isOwnAddress reports whether target, a client's target, dials the
// listener at own: the same unix socket, or the same port on an address
// of this host (any of them when own listens on all).
func isOwnAddress(target string, own net.Addr) bool {
	if path, isUnix, err := unixPath(target); err == nil && isUnix {
		return own.Network() == "unix" && own.String() == path
	}
	tcp, ok := own.(*net.TCPAddr)
	if !ok {
		return false
	}
	for _, prefix := range []string{"dns:///", "passthrough:///"} {
		target = strings.TrimPrefix(target, prefix)
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil || port != strconv.Itoa(tcp.Port) {
		return false
	}
	ips, err := net.LookupIP(host) // an IP literal, or a local name such as localhost
	if err != nil {
		return false
	}
	local := map[string]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				local[n.IP.String()] = true
			}
		}
	}
	for _, ip := range ips {
		if ip.Equal(tcp.IP) || (tcp.IP.IsUnspecified() && (ip.IsLoopback() || local[ip.String()])) {
			return true
		}
	}
	return false
}
