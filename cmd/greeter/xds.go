//go:build xds

package main

// Built with -tags xds, the CLI takes xds:///NAME targets: grpc's xDS
// client, which reads its bootstrap from GRPC_XDS_BOOTSTRAP or
// GRPC_XDS_BOOTSTRAP_CONFIG. It adds about 13 MB to the binary, so the
// default build leaves it out.
import _ "github.com/grpc-greeter/greeter/xds"
