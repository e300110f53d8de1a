package greeter

// Linking grpc's health package in registers its client-side health
// checker: without it, a "healthCheckConfig" in the service config (see
// [ServiceConfigWithHealthCheck]) is silently ignored and calls keep going to
// NOT_SERVING backends. The server's use of the package links it in too;
// this import says that the client depends on it, so that it stays if the
// server code changes.
import _ "google.golang.org/grpc/health"
