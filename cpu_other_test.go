//go:build !unix

package greeter_test

import "time"

// processCPU reports 0 where getrusage is missing: the benchmarks then
// leave out their CPU-per-call metrics.
func processCPU() time.Duration { return 0 }
