package main

import (
	"strings"
	"testing"
)

// commandFlags returns the flags of greeter cmd, by name, with the type
// word its --help shows ("duration", "int", "N"; "" for a bool).
func commandFlags(t *testing.T, cmd string) map[string]string {
	t.Helper()
	code, _, help := runCmd(cmd, "--help")
	if code != 0 {
		t.Fatalf("greeter %s --help exited %d", cmd, code)
	}
	flags := map[string]string{}
	for _, line := range strings.Split(help, "\n") {
		// "  -timeout duration", or "  -v\tusage" for a one-letter bool.
		line, _, _ = strings.Cut(line, "\t")
		name, ok := strings.CutPrefix(line, "  -")
		if !ok {
			continue
		}
		name, typ, _ := strings.Cut(name, " ")
		flags[name] = typ
	}
	if len(flags) == 0 {
		t.Fatalf("greeter %s --help lists no flags:\n%s", cmd, help)
	}
	return flags
}

// badFlagCode is the exit code of greeter cmd for a bad flag: 2, but 1 for
// health, as grpc-health-probe.
func badFlagCode(cmd string) int {
	if cmd == "health" {
		return 1
	}
	return 2
}

// flagCommands are the commands with flags, each with the arguments that
// make it harmless should a bad flag be accepted after all.
var flagCommands = map[string][]string{
	"serve":  {"--addr", "127.0.0.1:0"},
	"call":   {"--addr", "127.0.0.1:1"},
	"health": {"--addr", "127.0.0.1:1"},
	"bench":  {"--addr", "127.0.0.1:1", "--total", "1"},
}

// TestDurationFlagsSayUseAUnit gives every duration flag of every command a
// number without a unit, and something that is not a duration at all.
func TestDurationFlagsSayUseAUnit(t *testing.T) {
	seen := 0
	for cmd, base := range flagCommands {
		for name, typ := range commandFlags(t, cmd) {
			if typ != "duration" {
				continue
			}
			seen++
			for value, want := range map[string]string{
				"5":  "greeter " + cmd + ": --" + name + " 5: use a unit: 5s, 100ms\n",
				"5x": "greeter " + cmd + ": --" + name + " 5x: not a duration; use a unit (ns, us, ms, s, m, h)",
			} {
				code, out, errOut := runCmd(append(append([]string{cmd}, base...), "--"+name, value)...)
				if code != badFlagCode(cmd) || out != "" || !strings.HasPrefix(errOut, want) {
					t.Errorf("greeter %s --%s %s: exit %d, stdout %q, stderr %.200q; want %d and stderr starting %q",
						cmd, name, value, code, out, errOut, badFlagCode(cmd), want)
				}
				// The flag package's own words are gone; the usage follows.
				if strings.Contains(errOut, "parse error") || !strings.Contains(errOut, "Usage: greeter "+cmd) {
					t.Errorf("greeter %s --%s %s: stderr %.300q; want the hint instead of \"parse error\", then the usage", cmd, name, value, errOut)
				}
			}
		}
	}
	if seen < 10 {
		t.Errorf("found %d duration flags in the commands' --help, want the dozen or so there are", seen)
	}
}

// TestHelpShowsDurationDefaults checks that --help still gives duration
// flags their type and default.
func TestHelpShowsDurationDefaults(t *testing.T) {
	_, _, help := runCmd("call", "--help")
	if !strings.Contains(help, "  -timeout duration\n") || !strings.Contains(help, "(default 1s)") {
		t.Errorf("greeter call --help does not show -timeout duration (default 1s):\n%s", help)
	}
}

// TestNegativeFlagsRefused gives every number and duration flag of every
// command a negative value: none means anything below zero, and each is
// refused before the command does anything.
func TestNegativeFlagsRefused(t *testing.T) {
	seen := 0
	for cmd, base := range flagCommands {
		for name, typ := range commandFlags(t, cmd) {
			value := "-1"
			switch typ {
			case "duration":
				value = "-1s"
			case "int", "float", "N":
			default:
				continue
			}
			seen++
			code, out, errOut := runCmd(append(append([]string{cmd}, base...), "--"+name, value)...)
			want := "greeter " + cmd + ": --" + name + " " + value + ": must not be negative\n"
			if code != badFlagCode(cmd) || out != "" || errOut != want {
				t.Errorf("greeter %s --%s %s: exit %d, stdout %q, stderr %q; want %d and %q", cmd, name, value, code, out, errOut, badFlagCode(cmd), want)
			}
		}
	}
	if seen < 20 {
		t.Errorf("found %d number and duration flags in the commands' --help, want the twenty or so there are", seen)
	}
}

func TestServeNegativeGrace(t *testing.T) {
	code, out, errOut := runCmd("serve", "--addr", "127.0.0.1:0", "--grace", "-1s")
	if code != 2 || out != "" || errOut != "greeter serve: --grace -1s: must not be negative\n" {
		t.Errorf("serve --grace -1s: exit %d, stdout %q, stderr %q; want 2, nothing served, the flag named", code, out, errOut)
	}
}

func TestCallAttemptsAtLeastOne(t *testing.T) {
	code, _, errOut := runCmd("call", "--addr", "127.0.0.1:1", "--per-attempt-timeout", "100ms", "--attempts", "0")
	if code != 2 || !strings.Contains(errOut, "--attempts 0: must be at least 1") {
		t.Errorf("call --attempts 0: exit %d, stderr %q; want 2 and the flag named", code, errOut)
	}
}
