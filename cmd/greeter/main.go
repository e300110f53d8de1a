// Command greeter serves and calls the gRPC Greeter service.
//
// Usage:
//
//	greeter serve [--addr localhost:50051] [--grace 10s] [--fail-first N]
//	greeter call  [--addr localhost:50051] [--name world] [--again] [--timeout 1s]
//	              [--header k=v ...] [-v] [--compress gzip]
//	greeter health [--addr localhost:50051] [--service NAME]
//	greeter bench [--addr localhost:50051] [--concurrency 50] [--total N | --duration 10s] [--rps R] [--json]
//
// Run "greeter CMD --help" for every flag of a command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first SIGINT or SIGTERM cancels ctx: serve drains and stops. A
	// second one ends the process at once, for a drain that takes too
	// long. (Restoring the default action instead would not do: a shell
	// starts background jobs with SIGINT ignored.)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sigs
		cancel()
		s := <-sigs
		fmt.Fprintf(os.Stderr, "greeter: second signal (%v): exiting now\n", s)
		os.Exit(1)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: its name, a one-line summary, and its body,
// which parses its own flags and returns the process exit code.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "serve the Greeter service until SIGINT or SIGTERM", runServe},
		{"call", "call the Greeter service once and print the reply", runCall},
		{"health", "check a server's health; exit 0 only when SERVING", runHealth},
		{"bench", "load a Greeter server and report QPS, latency and errors", runBench},
	}
}

// run is main without the process: it parses args, runs one command and
// returns the exit code, so tests can drive it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "greeter: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "greeter serves and calls the gRPC Greeter service.")
	fmt.Fprintln(w, "\nUsage:\n\n  greeter COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"greeter COMMAND --help\" for a command's flags.")
}

// newFlagSet returns a flag set for one command that reports errors and help
// on stderr; parse then tells whether to go on and with which exit code.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("greeter "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: greeter %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args into fs. It returns ok=false with the exit code when the
// command must stop: 0 after --help, 2 on a bad flag.
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	case err != nil:
		return 2, false
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments: %v\n", fs.Name(), fs.Args())
		return 2, false
	}
	return 0, true
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
