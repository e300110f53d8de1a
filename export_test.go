package greeter

// StreamWorkersPerCPU is the stream-worker default, for tests and
// benchmarks that match or outnumber it.
const StreamWorkersPerCPU = streamWorkersPerCPU
