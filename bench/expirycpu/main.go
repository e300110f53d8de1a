// Command expirycpu reads an execution trace of BenchmarkDeadlinePrecision
// (or BenchmarkDeadlinePrecisionParts) and reports, for each implementation,
// the CPU its goroutines ran per call inside the waves' expiry windows, from
// the first deadline of a wave to the end of the wave, by the function each
// goroutine started in. With 100 deadlines at once on two cores, that CPU is
// what decides how late the calls end: each microsecond of it adds about 70µs
// to the median lateness. Run from the repository root:
//
//	go test -c -o /tmp/g.test . && /tmp/g.test -test.run '^$' -test.bench 'DeadlinePrecision$' -test.benchtime 100x -test.trace /tmp/trace.out
//	cd bench && go run ./expirycpu /tmp/trace.out
//
// The process is shared, so whatever runs in one implementation's window
// (timers, the runtime, the other side's transport) counts for it.
package main

import (
	"cmp"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/exp/trace"
)

type window struct {
	impl       string
	start, end trace.Time
}

type run struct {
	g          trace.GoID
	start, end trace.Time
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: expirycpu TRACE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		log.Fatal(err)
	}
	var (
		windows []window
		open    = map[string]trace.Time{} // impl -> its wave's first deadline
		since   = map[trace.GoID]trace.Time{}
		runs    []run
		kind    = map[trace.GoID]string{} // the function a goroutine started in
	)
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Kind() {
		case trace.EventLog:
			l := ev.Log()
			if l.Category != "precision-wave" {
				continue
			}
			if l.Message == "end" {
				// Waves run one at a time: the open one ends.
				for impl, start := range open {
					windows = append(windows, window{impl, start, ev.Time()})
					delete(open, impl)
				}
				continue
			}
			impl, untilDeadline, _ := strings.Cut(l.Message, " ")
			ns, err := strconv.ParseInt(untilDeadline, 10, 64)
			if err != nil {
				log.Fatalf("bad wave mark %q", l.Message)
			}
			open[impl] = ev.Time() + trace.Time(ns)
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			g := st.Resource.Goroutine()
			from, to := st.Goroutine()
			if _, ok := kind[g]; !ok {
				if from == trace.GoNotExist && st.Stack != trace.NoStack {
					kind[g] = outermost(st.Stack)
				} else if ev.Stack() != trace.NoStack && ev.Goroutine() == g {
					kind[g] = "~" + outermost(ev.Stack()) // started before the trace
				}
			}
			switch {
			case to == trace.GoRunning:
				since[g] = ev.Time()
			case from == trace.GoRunning:
				if t0, ok := since[g]; ok {
					runs = append(runs, run{g, t0, ev.Time()})
					delete(since, g)
				}
			}
		}
	}
	if len(windows) == 0 {
		log.Fatal("no wave marks: trace BenchmarkDeadlinePrecision with -test.trace")
	}
	type total struct {
		waves  int
		ns     int64
		byKind map[string]int64
	}
	totals := map[string]*total{}
	for _, w := range windows {
		t := totals[w.impl]
		if t == nil {
			t = &total{byKind: map[string]int64{}}
			totals[w.impl] = t
		}
		t.waves++
		for _, rn := range runs {
			if s, e := max(rn.start, w.start), min(rn.end, w.end); e > s {
				t.ns += int64(e - s)
				t.byKind[kind[rn.g]] += int64(e - s)
			}
		}
	}
	const calls = 100 // per wave: precisionConcurrency
	perCall := func(ns int64, waves int) float64 { return float64(ns) / float64(waves*calls) / 1e3 }
	impls := slices.Sorted(func(yield func(string) bool) {
		for impl := range totals {
			if !yield(impl) {
				return
			}
		}
	})
	for _, impl := range impls {
		t := totals[impl]
		fmt.Printf("%s: %d waves, %.1f µs of CPU per call in the expiry windows\n", impl, t.waves, perCall(t.ns, t.waves))
		kinds := slices.SortedFunc(func(yield func(string) bool) {
			for k := range t.byKind {
				if !yield(k) {
					return
				}
			}
		}, func(a, b string) int { return cmp.Compare(t.byKind[b], t.byKind[a]) })
		for _, k := range kinds {
			if us := perCall(t.byKind[k], t.waves); us >= 0.05 {
				fmt.Printf("  %6.2f µs  %s\n", us, k)
			}
		}
	}
	if base, ok := totals["grpc"]; ok {
		for _, impl := range impls {
			if impl != "grpc" {
				t := totals[impl]
				fmt.Printf("%s/grpc: %.3f\n", impl, perCall(t.ns, t.waves)/perCall(base.ns, base.waves))
			}
		}
	}
}

// outermost is the function a stack started in.
func outermost(st trace.Stack) string {
	var last string
	for fr := range st.Frames() {
		last = fr.Func
	}
	return last
}
