"""The tutorial's greeter client over TLS, with grpcio's own credentials:
grpc.ssl_channel_credentials verifying the server against a CA file,
presenting a client certificate when given one (mutual TLS), and
grpc.access_token_call_credentials sending a bearer token when given one.

Usage: greeter_client_tls.py TARGET CA_FILE [--name NAME]
           [--cert FILE --key FILE] [--token TOKEN]

On an RPC error it prints the status code's name and details and exits 1.
"""
import argparse
import sys

import grpc

import helloworld_pb2
import helloworld_pb2_grpc


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("target")
    p.add_argument("ca")
    p.add_argument("--name", default="you")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--token")
    a = p.parse_args()
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(a.ca),
        private_key=read(a.key) if a.key else None,
        certificate_chain=read(a.cert) if a.cert else None,
    )
    if a.token:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(a.token))
    with grpc.secure_channel(a.target, creds) as channel:
        stub = helloworld_pb2_grpc.GreeterStub(channel)
        try:
            response = stub.SayHello(helloworld_pb2.HelloRequest(name=a.name), timeout=10)
        except grpc.RpcError as e:
            print("Greeter client failed: %s: %s" % (e.code().name, e.details()))
            sys.exit(1)
    print("Greeter client received: " + response.message)


if __name__ == "__main__":
    main()
