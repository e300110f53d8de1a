package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// newFlagSet returns a flag set for one command that reports errors and help
// on stderr; parse then tells whether to go on and with which exit code.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("greeter "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: greeter %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// addUsageNotes makes fs's --help end with notes, after the flags.
func addUsageNotes(fs *flag.FlagSet, notes string) {
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprint(fs.Output(), notes)
	}
}

// parse parses args into fs. It returns ok=false with the exit code when the
// command must stop: 0 after --help, 2 on a bad flag. Beyond the flag
// package's checks, it says how to write a duration when one lacks its unit,
// and refuses a negative number or duration: no flag of greeter's means
// anything below zero.
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	out := fs.Output()
	// The flag package prints its error, then the usage: catch them to
	// reword a bad duration.
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if hint, ok := durationHint(fs, err); ok {
		rest, _ := strings.CutPrefix(buf.String(), err.Error()+"\n")
		buf.Reset()
		fmt.Fprintf(&buf, "%s: %s\n%s", fs.Name(), hint, rest)
	}
	out.Write(buf.Bytes())
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	case err != nil:
		return 2, false
	case fs.NArg() > 0:
		fmt.Fprintf(out, "%s: unexpected arguments: %v\n", fs.Name(), fs.Args())
		return 2, false
	}
	if err := refuseNegative(fs); err != nil {
		fmt.Fprintf(out, "%s: %v\n", fs.Name(), err)
		return 2, false
	}
	return 0, true
}

// durationHint returns, when err is the flag package's error for a bad
// value of a duration flag of fs, a message that names the flag and says
// how to write a duration: the flag package's own says only "parse error".
func durationHint(fs *flag.FlagSet, err error) (string, bool) {
	if err == nil {
		return "", false
	}
	// The flag package's words: invalid value "5" for flag -timeout: parse error
	rest, ok := strings.CutPrefix(err.Error(), "invalid value ")
	if !ok {
		return "", false
	}
	quoted, qerr := strconv.QuotedPrefix(rest)
	if qerr != nil {
		return "", false
	}
	value, _ := strconv.Unquote(quoted)
	rest, ok = strings.CutPrefix(rest[len(quoted):], " for flag -")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, ":")
	f := fs.Lookup(name)
	if f == nil {
		return "", false
	}
	if g, ok := f.Value.(flag.Getter); !ok {
		return "", false
	} else if _, ok := g.Get().(time.Duration); !ok {
		return "", false
	}
	return durationAdvice(name, value), true
}

// durationAdvice says how to write a duration for flag name, given value.
func durationAdvice(name, value string) string {
	if value == "" || strings.ContainsAny(value, " \t") {
		value = strconv.Quote(value)
	}
	if _, err := strconv.ParseFloat(value, 64); err == nil {
		example := "5s"
		if _, err := time.ParseDuration(value + "s"); err == nil {
			example = value + "s"
		}
		return fmt.Sprintf("--%s %s: use a unit: %s, 100ms", name, value, example)
	}
	return fmt.Sprintf("--%s %s: not a duration; use a unit (ns, us, ms, s, m, h): 5s, 100ms, 1m30s", name, value)
}

// refuseNegative returns an error naming the first flag given on the
// command line whose number or duration is negative.
func refuseNegative(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok || err != nil {
			return
		}
		var neg bool
		switch v := g.Get().(type) {
		case time.Duration:
			neg = v < 0
		case int:
			neg = v < 0
		case int64:
			neg = v < 0
		case float64:
			neg = v < 0
		}
		if neg {
			err = fmt.Errorf("--%s %s: must not be negative", f.Name, f.Value)
		}
	})
	return err
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
