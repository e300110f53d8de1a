package greeter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A call that runs out of time says which deadline, from where, and where
// the call was; code that only checks status.Code or errors.Is still works.
func ExampleDeadlineError() {
	addr, stop := serve(greeter.WithDelay(time.Hour)) // a slow server
	defer stop()
	c, _ := greeter.NewClient(addr, greeter.WithInsecure())
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.SayHello(ctx, "you")

	fmt.Println(status.Code(err), errors.Is(err, context.DeadlineExceeded))
	var de *greeter.DeadlineError
	if errors.As(err, &de) {
		// Budget is what was left when the call started: a little less
		// than the second, by however long it took to get there.
		fmt.Printf("budget %v from %v, %v, %d attempt\n", de.Budget.Round(time.Second), de.Source, de.Phase, de.Attempts)
	}
	// Output:
	// DeadlineExceeded true
	// budget 1s from caller's context, on the server, 1 attempt
}

// A server caps the budgets it accepts and tells the client when its cap,
// not the client's deadline, ended the call; it refuses at once a call
// with less budget left than its method needs.
func ExampleWithServerDeadlines() {
	addr, stop := serve(
		greeter.WithDelay(time.Hour),
		greeter.WithServerDeadlines(greeter.DeadlinePolicy{
			Default: 50 * time.Millisecond, // for calls that arrive without a deadline
			Max:     50 * time.Millisecond, // no call runs longer
		}),
		// SayHelloAgain needs a second: refuse calls that cannot finish.
		greeter.WithMethodDeadlines("SayHelloAgain", greeter.DeadlinePolicy{MinBudget: time.Second}),
	)
	defer stop()
	c, _ := greeter.NewClient(addr, greeter.WithInsecure())
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.SayHello(ctx, "you")
	var de *greeter.DeadlineError
	if errors.As(err, &de) {
		fmt.Println(de.Code, "from the", de.Source, de.Budget)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = c.SayHelloAgain(ctx, "you")
	fmt.Println(status.Code(err), "refused:", strings.Contains(err.Error(), "needs at least 1s of budget"))
	// Output:
	// DeadlineExceeded from the server's cap 50ms
	// DeadlineExceeded refused: true
}

// A relay passes its remaining budget, less a reserve to reply, to the
// server it calls, and cancels that call when its own caller goes away.
func ExampleWithUpstream() {
	upstreamAddr, upstreamStop := serve()
	defer upstreamStop()
	up, _ := greeter.NewClient(upstreamAddr, greeter.WithInsecure())
	defer up.Close()

	relayAddr, relayStop := serve(greeter.WithUpstream(up), greeter.WithReplyReserve(20*time.Millisecond))
	defer relayStop()
	c, _ := greeter.NewClient(relayAddr, greeter.WithInsecure())
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	msg, err := c.SayHello(ctx, "relay")
	fmt.Println(msg, err)
	// Output:
	// Hello, relay! <nil>
}

// A stream with an idle timeout needs no whole-stream deadline: it ends
// only when no message has moved for that long.
func ExampleWithStreamIdleTimeout() {
	addr, stop := serve(greeter.WithDelay(20*time.Millisecond), greeter.WithStreamReplies(3))
	defer stop()
	c, _ := greeter.NewClient(addr, greeter.WithInsecure(), greeter.WithStreamIdleTimeout(time.Second))
	defer c.Close()

	stream, _ := c.SayHelloStreamReply(context.Background(), "you")
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(status.Code(err))
			break
		}
		fmt.Println(r.GetMessage())
	}
	// Output:
	// Hello, you! (1/3)
	// Hello, you! (2/3)
	// Hello, you! (3/3)
}

// Each attempt gets at most its own timeout; an attempt that runs out is
// retried while the call's deadline allows.
func ExampleWithPerAttemptTimeout() {
	addr, stop := serve(greeter.WithDelay(time.Hour)) // every attempt hangs
	defer stop()
	c, _ := greeter.NewClient(addr, greeter.WithInsecure(), greeter.WithPerAttemptTimeout(20*time.Millisecond, 3))
	defer c.Close()

	_, err := c.SayHello(context.Background(), "you")
	var de *greeter.DeadlineError
	if errors.As(err, &de) {
		fmt.Println(de.Code == codes.DeadlineExceeded, de.Source, de.Budget, de.Attempts, de.LastCode)
	}
	// Output:
	// true per-attempt timeout 20ms 3 DeadlineExceeded
}
