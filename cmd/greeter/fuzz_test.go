package main

import (
	"strings"
	"testing"
)

// Every --header value is taken or refused with a message, never a panic.
func FuzzHeaderFlag(f *testing.F) {
	for _, s := range []string{"k=v", "x-token-bin=AAEC", "x-bin=!!", "=v", "k", " k = v "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var h headerFlag
		if err := h.Set(s); err == nil && len(h.md) != 1 {
			t.Fatalf("Set(%q) took it but holds %v", s, h.md)
		}
	})
}

// Every duration a user types is taken, or refused with exit 2 and, when
// it lacks a unit, a hint: never a panic.
func FuzzDurationFlag(f *testing.F) {
	for _, s := range []string{"1s", "5", "100ms", "-1s", "1h2m", "1e3", "", "1 s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var errOut strings.Builder
		fs := newFlagSet("call", "", &errOut)
		fs.Duration("timeout", 0, "")
		code, ok := parse(fs, []string{"--timeout", s})
		if !ok && code != 2 {
			t.Fatalf("--timeout %q: exit %d; want 2 for a bad value", s, code)
		}
	})
}
