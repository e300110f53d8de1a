"""The Python grpcio tutorial's greeter client, with the target and name
taken from the command line so tests can point it at any port.

Usage: greeter_client.py [TARGET [NAME]]   (default localhost:50051, you)
"""
import sys

import grpc

import helloworld_pb2
import helloworld_pb2_grpc


def run(target, name):
    with grpc.insecure_channel(target) as channel:
        stub = helloworld_pb2_grpc.GreeterStub(channel)
        response = stub.SayHello(helloworld_pb2.HelloRequest(name=name), timeout=10)
    print("Greeter client received: " + response.message)


if __name__ == "__main__":
    args = sys.argv[1:]
    run(args[0] if args else "localhost:50051", args[1] if len(args) > 1 else "you")
