package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// serveDeadlineFlags are the deadline flags of greeter serve.
type serveDeadlineFlags struct {
	delay, defaultTimeout, maxTimeout, minBudget, overrunGrace, replyReserve *time.Duration
	upstream                                                                 *string
}

func addServeDeadlineFlags(fs *flag.FlagSet) *serveDeadlineFlags {
	return &serveDeadlineFlags{
		delay:          fs.Duration("delay", 0, "simulated work before each reply; it stops the moment the caller goes away"),
		defaultTimeout: fs.Duration("default-timeout", 0, "budget for calls that arrive without a deadline (0: none)"),
		maxTimeout:     fs.Duration("max-timeout", 0, "cap on any call's budget, reported to the client (0: no cap)"),
		minBudget:      fs.Duration("min-budget", 0, "refuse at once calls arriving with less time left than this (0: accept all)"),
		overrunGrace:   fs.Duration("overrun-grace", greeter.DefaultOverrunGrace, "log handlers still running this long after their context ended"),
		upstream:       fs.String("upstream", "", "relay every call to the greeter at this `address`, passing on the remaining budget"),
		replyReserve:   fs.Duration("reply-reserve", greeter.DefaultReplyReserve, "with --upstream, the part of the budget kept to reply"),
	}
}

// options returns the server options the flags ask for, and a function to
// release what they hold (the upstream client) after shutdown. The
// upstream client gets copts too.
func (f *serveDeadlineFlags) options(copts ...greeter.ClientOption) ([]greeter.ServerOption, func(), error) {
	opts := []greeter.ServerOption{
		greeter.WithOverrunGrace(*f.overrunGrace),
		greeter.WithDelay(*f.delay),
		greeter.WithServerDeadlines(greeter.DeadlinePolicy{Default: *f.defaultTimeout, Max: *f.maxTimeout, MinBudget: *f.minBudget}),
	}
	if *f.upstream == "" {
		return opts, func() {}, nil
	}
	up, err := greeter.NewClient(*f.upstream, append([]greeter.ClientOption{greeter.WithInsecure()}, copts...)...)
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, greeter.WithUpstream(up), greeter.WithReplyReserve(*f.replyReserve))
	return opts, func() { up.Close() }, nil
}

// upstreamTarget is --upstream, "" for none.
func (f *serveDeadlineFlags) upstreamTarget() string { return *f.upstream }

// callDeadlineFlags are the deadline flags of greeter call.
type callDeadlineFlags struct {
	waitForReady, stream *bool
	perAttempt, idle     *time.Duration
	attempts             *int
}

func addCallDeadlineFlags(fs *flag.FlagSet) *callDeadlineFlags {
	return &callDeadlineFlags{
		waitForReady: fs.Bool("wait-for-ready", false, "wait for the server to be reachable, within --timeout, instead of failing at once"),
		perAttempt:   fs.Duration("per-attempt-timeout", 0, "give each attempt at most this and retry one that runs out (0: one attempt)"),
		attempts:     fs.Int("attempts", greeter.DefaultMaxAttempts, "with --per-attempt-timeout, attempts in all"),
		stream:       fs.Bool("stream", false, "call SayHelloStreamReply and print each reply"),
		idle:         fs.Duration("idle-timeout", 0, "with --stream, end the stream after this long without a message (0: the client's default, 10s for a stream with no deadline, else none)"),
	}
}

func (f *callDeadlineFlags) clientOptions() []greeter.ClientOption {
	var opts []greeter.ClientOption
	if *f.waitForReady {
		// Retry the connection every 100ms-1s instead of grpc's 1s and
		// growing, so that the call goes out soon after the server is up.
		opts = append(opts, greeter.WithDialOptions(grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 20 * time.Second,
		})))
	}
	if *f.perAttempt > 0 {
		opts = append(opts, greeter.WithPerAttemptTimeout(*f.perAttempt, *f.attempts))
	}
	if *f.idle > 0 {
		opts = append(opts, greeter.WithStreamIdleTimeout(*f.idle))
	}
	return opts
}

func (f *callDeadlineFlags) callOptions() []grpc.CallOption {
	if *f.waitForReady {
		return []grpc.CallOption{grpc.WaitForReady(true)}
	}
	return nil
}

// streamCall prints each reply of SayHelloStreamReply as it comes.
func streamCall(ctx context.Context, c *greeter.Client, name string, opts []grpc.CallOption, stdout io.Writer) error {
	stream, err := c.SayHelloStreamReply(ctx, name, opts...)
	if err != nil {
		return err
	}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, r.GetMessage())
	}
}
