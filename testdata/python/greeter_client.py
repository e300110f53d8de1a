"""The Python grpcio tutorial's greeter client, with the target, name and
timeout taken from the command line so tests can point it at any port.

Usage: greeter_client.py [TARGET [NAME [TIMEOUT_SECONDS]]]
       (default localhost:50051, you, 10)

On an RPC error it prints the status code's name and details and exits 1.
"""
import sys

import grpc

import helloworld_pb2
import helloworld_pb2_grpc


def run(target, name, timeout):
    with grpc.insecure_channel(target) as channel:
        stub = helloworld_pb2_grpc.GreeterStub(channel)
        try:
            response = stub.SayHello(helloworld_pb2.HelloRequest(name=name), timeout=timeout)
        except grpc.RpcError as e:
            print("Greeter client failed: %s: %s" % (e.code().name, e.details()))
            sys.exit(1)
    print("Greeter client received: " + response.message)


if __name__ == "__main__":
    args = sys.argv[1:]
    run(args[0] if args else "localhost:50051",
        args[1] if len(args) > 1 else "you",
        float(args[2]) if len(args) > 2 else 10.0)
