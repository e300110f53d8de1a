// Package greeterpb holds the Go code generated from greeter.proto: the
// HelloRequest and HelloReply messages and the Greeter service's client and
// server interfaces. Regenerate it with `go generate ./...` at the module root.
//
// The proto has no package line, so the service's full name is "Greeter".
// Most programs use the typed wrappers in package greeter instead.
package greeterpb
