"""The Python implementation of the GRPC helloworld.Greeter server.

Modelled on the grpcio tutorial's greeter_server.py, changed only to take
the listening port from the command line (0 picks a free one), to
listen on 127.0.0.1 and to print the address it listens on.
compare.sh generates helloworld_pb2 and helloworld_pb2_grpc into a temp dir
from helloworld.proto with grpc_tools.protoc and puts it on PYTHONPATH.
"""

from concurrent import futures
import sys

import grpc
import helloworld_pb2
import helloworld_pb2_grpc


class Greeter(helloworld_pb2_grpc.GreeterServicer):

    def SayHello(self, request, context):
        return helloworld_pb2.HelloReply(message='Hello, %s!' % request.name)


def serve(port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    port = server.add_insecure_port('127.0.0.1:%s' % port)
    server.start()
    print('Server started, listening on 127.0.0.1:%d' % port, flush=True)
    server.wait_for_termination()


if __name__ == '__main__':
    serve(sys.argv[1] if len(sys.argv) > 1 else '50051')
