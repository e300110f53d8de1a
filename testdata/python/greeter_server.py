"""The Python grpcio tutorial's greeter server, listening on the address
given on the command line (port 0 picks a free one) and printing the port it
got, so tests need no fixed port.

Usage: greeter_server.py [ADDRESS]   (default [::]:50051)
"""
from concurrent import futures
import sys

import grpc

import helloworld_pb2
import helloworld_pb2_grpc


class Greeter(helloworld_pb2_grpc.GreeterServicer):
    def SayHello(self, request, context):
        return helloworld_pb2.HelloReply(message="Hello, %s!" % request.name)


def serve(address):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    port = server.add_insecure_port(address)
    server.start()
    print("Server started, listening on " + str(port), flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    serve(sys.argv[1] if len(sys.argv) > 1 else "[::]:50051")
