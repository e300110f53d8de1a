package greeter

// Linking grpc's health package in registers its client-side health
// checker: without it, a "healthCheckConfig" in the service config (see
// [ServiceConfigWithHealthCheck]) is silently ignored and calls keep going to
// NOT_SERVING backends.
import _ "google.golang.org/grpc/health"
