//go:build !unix

package loadreport

import "time"

// cpuTime returns -1: CPU utilization is not reported on this system.
func cpuTime() time.Duration { return -1 }
