// Command greeter serves and calls the gRPC Greeter service.
//
// Usage:
//
//	greeter serve [--addr localhost:50051 | --addr unix:/path] [--grace 10s] [--fail-first N]
//	greeter call  [--addr localhost:50051] [--name world] [--again] [--timeout 1s]
//	              [--header k=v ...] [-v] [--compress gzip]
//	greeter health [--addr localhost:50051] [--service NAME]
//	greeter bench [--addr localhost:50051] [--concurrency 50] [--total N | --duration 10s] [--rps R]
//	              [--max-errors N] [--json]
//	greeter version (or greeter --version)
//
// Run "greeter CMD --help" for every flag of a command. Bad flags exit 2
// (1 for health, whose exit codes are grpc-health-probe's).
package main

import (
	"context"
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
		{"version", "print the versions of greeter, grpc-go and Go", runVersion},
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
	case "-version", "--version":
		return runVersion(ctx, args[1:], stdout, stderr)
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
