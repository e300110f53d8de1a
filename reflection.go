package greeter

import (
	"sync"

	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	v1reflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1"
	v1alphareflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// registerReflection registers server reflection (v1 and v1alpha) on s,
// resolving descriptors from protobuf's global registry plus a private copy of
// greeter.proto in package helloworld, so that tools can describe and call
// helloworld.Greeter too. The copy stays out of the global registry, where it
// would clash with upstream's helloworld package in an importer's binary.
func registerReflection(s *grpc.Server) {
	opts := reflection.ServerOptions{Services: s, DescriptorResolver: reflectionResolver{}}
	v1reflectiongrpc.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
	v1alphareflectiongrpc.RegisterServerReflectionServer(s, reflection.NewServer(opts))
}

// helloworldFiles holds greeter.proto re-declared in package helloworld,
// built once on first use.
var helloworldFiles = sync.OnceValue(func() *protoregistry.Files {
	fdp := protodesc.ToFileDescriptorProto(greeterpb.File_greeter_proto)
	fdp.Name = new("helloworld/greeter.proto")
	fdp.Package = new("helloworld")
	for _, m := range fdp.GetService()[0].GetMethod() {
		m.InputType = new(".helloworld" + m.GetInputType())
		m.OutputType = new(".helloworld" + m.GetOutputType())
	}
	files := new(protoregistry.Files)
	fd, err := protodesc.NewFile(fdp, nil)
	if err == nil {
		err = files.RegisterFile(fd)
	}
	if err != nil {
		// Unreachable for the committed greeter.proto; without the copy,
		// reflection still serves everything but helloworld.Greeter.
		return new(protoregistry.Files)
	}
	return files
})

type reflectionResolver struct{}

func (reflectionResolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := helloworldFiles().FindFileByPath(path); err == nil {
		return fd, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

func (reflectionResolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := helloworldFiles().FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}
