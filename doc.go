// Package greeter serves and calls the gRPC Greeter service.
package greeter

//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --plugin=protoc-gen-go-grpc=$(go tool -n protoc-gen-go-grpc) --go_out=. --go_opt=module=github.com/grpc-greeter/greeter --go-grpc_out=. --go-grpc_opt=module=github.com/grpc-greeter/greeter greeter.proto"
