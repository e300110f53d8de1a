package greeter

import (
	"runtime"

	"google.golang.org/grpc"
)

// streamWorkersPerCPU sets the stream workers a server starts: see
// tunedServerOptions.
const streamWorkersPerCPU = 16

// tunedServerOptions are the grpc-go settings a [Server] from [NewServer]
// starts with, chosen by benchmark (BenchmarkTuning in bench_test.go, whose
// results docs/benchmarks.md records); options given with
// [WithGRPCServerOptions] come later and win.
//
// Stream workers: streamWorkersPerCPU x GOMAXPROCS goroutines, started by
// NewServer and stopped by [Server.Shutdown], run incoming streams instead
// of a new goroutine for each: no goroutine to create and no stack to grow
// per call. When all are busy grpc-go falls back to a new goroutine, so a
// slow handler delays nothing. GOMAXPROCS workers, the first default, won
// with GOMAXPROCS callers in process (about 13% less time per unary call
// over TCP) but with 50 callers from another process they were nearly
// always busy and the server paid 5% more CPU per call than plain grpc-go;
// 16 per CPU cost 6-11% less than plain grpc-go there (bench/servercpu) and
// as little in process. Idle workers cost only their stacks, a few KiB each.
// Every collection halves the stack of an idle worker, which grows it back
// at its next call. In BenchmarkDeadlinePrecision's bursts after a quiet
// spell, greeter with the workers spent 4% more CPU than without (36 runs
// of each binary), though BenchmarkDeadlinePrecisionParts, which runs both
// servers in one process, measured the opposite; the latency percentiles
// moved within their noise either way (docs/deadlines.md §11).
// grpc-go marks the option experimental;
// WithGRPCServerOptions(grpc.NumStreamWorkers(0)) turns it off.
//
// Tried and not adopted, for no gain: shared write buffers (grpc-go 1.85
// already holds no write buffer on an idle connection), 64 KiB read and write
// buffers (slower), a static 1 MiB flow-control window (12 fewer allocations
// per call, but no faster, and it turns off BDP window growth, which long
// fat links need), a forced codec, and no buffer pool (the default pool is
// already on).
func tunedServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.NumStreamWorkers(uint32(streamWorkersPerCPU * runtime.GOMAXPROCS(0))),
	}
}
