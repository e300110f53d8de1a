//go:build !race

package greeter_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
)

// A bounded soak, without the race detector (which would make it a
// benchmark of itself): 100,000 calls, 200 at a time over 4 connections,
// with zero errors, and goroutines and heap back to where they were.
func TestSoak(t *testing.T) {
	const (
		total       = 100_000
		concurrency = 200
		connections = 4
	)
	ctx := testContext(t)
	_, addr := startTCPGreeter(t)
	baseG := runtime.NumGoroutine() // before any connection
	clients := make([]*greeter.Client, connections)
	for i := range clients {
		c, err := greeter.NewClient(addr, greeter.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
		if _, err := c.SayHello(ctx, "warm"); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	baseHeap := liveHeap()

	var next, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for w := range concurrency {
		c := clients[w%connections]
		wg.Go(func() {
			for next.Add(1) <= total {
				if _, err := c.SayHello(ctx, "soak"); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	for _, c := range clients {
		c.Close()
	}
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d calls failed; first: %v", f, total, firstErr.Load())
	}
	if took > time.Minute {
		t.Errorf("the soak took %v; want under a minute", took)
	}
	// Goroutines come back to where they were before the connections
	// once these have closed on both sides, which nothing signals: look
	// until they have, bounded by the test's context.
	for runtime.NumGoroutine() > baseG {
		select {
		case <-ctx.Done():
			t.Fatalf("goroutines %d after the soak; want back to %d", runtime.NumGoroutine(), baseG)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if heap := liveHeap(); heap > baseHeap+8<<20 {
		t.Errorf("live heap %d MB after the soak, from %d MB; want it back", heap>>20, baseHeap>>20)
	}
	t.Logf("%d calls in %v (%.0f/s), live heap %d KB → %d KB", total, took.Round(time.Millisecond), total/took.Seconds(), baseHeap>>10, liveHeap()>>10)
}
