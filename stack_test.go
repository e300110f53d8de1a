package greeter

import (
	"runtime"
	"sync"
	"testing"
)

// TestGrowStack checks that growStack still grows a new goroutine's stack:
// a compiler that dropped its unused frame would make it a silent no-op.
func TestGrowStack(t *testing.T) {
	const n = 200
	// stackBytes starts n goroutines that run f and wait, and returns how
	// much the stacks in use grew meanwhile.
	stackBytes := func(f func()) int64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.StackInuse
		var started, done sync.WaitGroup
		release := make(chan struct{})
		for range n {
			started.Add(1)
			done.Go(func() {
				f()
				started.Done()
				<-release
			})
		}
		started.Wait()
		runtime.ReadMemStats(&ms)
		close(release)
		done.Wait()
		return int64(ms.StackInuse) - int64(before)
	}
	plain := stackBytes(func() {})
	grown := stackBytes(growStack)
	// 8KB stacks rather than 2KB ones (4KB ones under the race detector):
	// at least 2KB more each.
	if want := plain + n*2<<10; grown < want {
		t.Errorf("stacks of %d goroutines that called growStack: %d bytes; want at least %d (%d without it)", n, grown, want, plain)
	}
}
