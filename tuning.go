package greeter

import (
	"runtime"

	"google.golang.org/grpc"
)

// tunedServerOptions are the grpc-go settings a [Server] from [NewServer]
// starts with, chosen by benchmark (BenchmarkTuning in bench_test.go, whose
// results docs/benchmarks.md records); options given with
// [WithGRPCServerOptions] come later and win.
//
// Stream workers: GOMAXPROCS goroutines, started by NewServer and stopped by
// [Server.Shutdown], run incoming streams instead of a new goroutine for
// each; when all are busy grpc-go falls back to a new goroutine, so a slow
// handler delays nothing. About 13% less time per unary call over TCP, serial
// and parallel, and no change for streams. grpc-go marks the option
// experimental; WithGRPCServerOptions(grpc.NumStreamWorkers(0)) turns it off.
//
// Tried and not adopted, for no gain: shared write buffers (grpc-go 1.85
// already holds no write buffer on an idle connection), 64 KiB read and write
// buffers (slower), a static 1 MiB flow-control window (12 fewer allocations
// per call, but no faster, and it turns off BDP window growth, which long
// fat links need), a forced codec, and no buffer pool (the default pool is
// already on).
func tunedServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	}
}
