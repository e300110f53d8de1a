package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", "[flags]", stderr)
	addr := fs.String("addr", "localhost:50051", "`address` to listen on: host:port (port 0 picks a free one), or unix:PATH for a unix socket")
	drain := fs.Duration("drain-delay", 0, "on SIGTERM, say NOT_SERVING but keep accepting calls this long, so that load balancers and readiness probes move traffic away first (0: stop accepting at once)")
	grace := fs.Duration("grace", 10*time.Second, "how long shutdown waits for in-flight calls before cancelling them (0: cancel them at once)")
	noReflection := fs.Bool("no-reflection", false, "do not register the server reflection service")
	failFirst := fs.Int("fail-first", 0, "fault injection: fail the first `N` attempts of every call with UNAVAILABLE")
	workers := fs.Int("stream-workers", 16*runtime.GOMAXPROCS(0), "goroutines kept to run incoming calls, 16 per CPU by default (grpc.NumStreamWorkers); 0 starts a goroutine per call")
	maxStreams := fs.Uint("max-streams", greeter.DefaultMaxConcurrentStreams, "calls one connection may have open at once (HTTP/2 MAX_CONCURRENT_STREAMS): bounds what one client can hold")
	maxHeaders := fs.Uint("max-header-bytes", greeter.DefaultMaxHeaderListSize, "largest header list a call may carry, decoded (HTTP/2 MAX_HEADER_LIST_SIZE)")
	requestID := fs.Bool("request-id", false, "echo each call's x-request-id (the caller's, or a generated one) in a response header; costs about 8% of QPS")
	deadlines := addServeDeadlineFlags(fs)
	tlsFlags := addServerTLSFlags(fs)
	observeFlags := addObserveFlags(fs)
	loadReports := addLoadReportsFlag(fs)
	security := addSecurityFlags(fs, tlsFlags)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if _, _, err := unixPath(*addr); err != nil {
		fmt.Fprintf(stderr, "greeter serve: %v\n", err)
		return 2
	}

	logger, err := observeFlags.logger(stderr)
	if err == nil {
		err = observeFlags.check()
	}
	if err == nil {
		err = security.checkAddr(*addr)
	}
	if err == nil {
		err = security.checkAdmin(*observeFlags.adminAddr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "greeter serve: %v\n", err)
		return 2
	}
	// Before the server: channelz counts what is made after it is on.
	obs, err := observeFlags.start(ctx, logger)
	if err != nil {
		fmt.Fprintf(stderr, "greeter serve: %v\n", err)
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := obs.stop(sctx); err != nil {
			logger.Warn("stopping metrics, traces and admin services", "error", err)
		}
	}()
	opts := []greeter.ServerOption{greeter.WithFailFirst(*failFirst),
		greeter.WithDrainDelay(*drain), greeter.WithMaxConcurrentStreams(uint32(min(*maxStreams, math.MaxUint32))), greeter.WithMaxHeaderListSize(uint32(min(*maxHeaders, math.MaxUint32)))}
	if *requestID {
		opts = append(opts, greeter.WithRequestID())
	}
	if flagSet(fs, "stream-workers") {
		opts = append(opts, greeter.WithGRPCServerOptions(grpc.NumStreamWorkers(uint32(*workers))))
	}
	if *noReflection {
		opts = append(opts, greeter.WithoutReflection())
	}
	opts = append(opts, loadReportOptions(*loadReports)...)
	topts, err := tlsFlags.options()
	if err != nil {
		fmt.Fprintf(stderr, "greeter serve: %v\n", err)
		return 2
	}
	opts = append(opts, topts...)
	opts = append(opts, obs.server...)
	sopts, err := security.options()
	if err != nil {
		fmt.Fprintf(stderr, "greeter serve: %v\n", err)
		return 2
	}
	opts = append(opts, sopts...)
	dopts, release, err := deadlines.options(obs.client...)
	if err != nil {
		fmt.Fprintf(stderr, "greeter serve: %v\n", err)
		return 2
	}
	defer release()
	opts = append(opts, dopts...)
	srv, err := greeter.NewServer(opts...)
	if err != nil {
		fmt.Fprintf(stderr, "greeter serve: %v\n", err)
		return 2
	}
	lis, target, err := listen(*addr)
	if err != nil {
		fmt.Fprintf(stderr, "greeter serve: %v\n", err)
		// Nothing was served: this returns at once, ending the server's
		// goroutines.
		_ = srv.Shutdown(context.Background())
		return 1
	}
	if err := security.checkListener(*addr, lis.Addr()); err != nil {
		fmt.Fprintf(stderr, "greeter serve: %v\n", err)
		lis.Close()
		_ = srv.Shutdown(context.Background())
		return 2
	}
	if up := deadlines.upstreamTarget(); up != "" && isOwnAddress(up, lis.Addr()) {
		fmt.Fprintf(stderr, "greeter serve: --upstream %s is this server's own address (%s): a relay to itself would call itself; point it at another server\n", up, target)
		lis.Close()
		_ = srv.Shutdown(context.Background())
		return 2
	}
	// The target is what a client dials: for a unix socket, unix:PATH.
	fmt.Fprintf(stdout, "greeter: serving Greeter on %s\n", target)
	for _, line := range obs.where {
		fmt.Fprintln(stdout, line)
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "greeter serve: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("shutting down", "drain_delay", *drain, "grace", *grace)
	// The drain delay, then the grace for the calls in flight.
	sctx, cancel := context.WithTimeout(context.Background(), *drain+*grace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "greeter serve: shutdown: %v\n", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}
