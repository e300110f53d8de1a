package greeter_test

import (
	"testing"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greetertest"
	v1reflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// TestReflectionDescribesBothNames checks what grpcurl needs to describe and
// call each service name: the file that declares it, with its methods.
func TestReflectionDescribesBothNames(t *testing.T) {
	c := greetertest.NewClient(t)
	stream, err := v1reflectiongrpc.NewServerReflectionClient(c.Conn()).ServerReflectionInfo(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	for _, tt := range []struct{ service, wantPackage string }{
		{greeter.ServiceName, ""},
		{greeter.HelloworldServiceName, "helloworld"},
	} {
		err := stream.Send(&v1reflectiongrpc.ServerReflectionRequest{
			MessageRequest: &v1reflectiongrpc.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: tt.service},
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		files := resp.GetFileDescriptorResponse().GetFileDescriptorProto()
		if len(files) == 0 {
			t.Fatalf("%s: no file descriptor: %v", tt.service, resp.GetErrorResponse())
		}
		fd := new(descriptorpb.FileDescriptorProto)
		if err := proto.Unmarshal(files[0], fd); err != nil {
			t.Fatal(err)
		}
		if fd.GetPackage() != tt.wantPackage || len(fd.GetService()) != 1 || len(fd.GetService()[0].GetMethod()) != 4 {
			t.Fatalf("%s: got package %q with services %v, want package %q declaring Greeter with 4 methods",
				tt.service, fd.GetPackage(), fd.GetService(), tt.wantPackage)
		}
	}
}
