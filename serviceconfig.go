package greeter

import (
	"encoding/json"
	"fmt"

	// Linking grpc's health package in registers its client-side health
	// checker: without it, a "healthCheckConfig" in the service config
	// (see ServiceConfigWithHealthCheck) is silently ignored and calls
	// keep going to NOT_SERVING backends.
	_ "google.golang.org/grpc/health"
)

// DefaultServiceConfig is the gRPC service config (grpc's JSON form, see
// https://github.com/grpc/grpc/blob/master/doc/service_config.md) that
// [NewClient] applies unless [WithServiceConfig] replaces it. For every
// method of the Greeter service, under both its names, it says:
//
//   - retryPolicy: a call that fails with UNAVAILABLE (no server reachable,
//     server shutting down, fault injected with [WithFailFirst]) is retried up
//     to 4 attempts in all, with exponential backoff from 0.1s to 1s and
//     jitter, within the call's deadline. grpc retries only calls that have
//     not yet received a response, so no call is applied twice after a
//     partial answer; other codes are never retried.
//   - retryThrottling: a client-wide token bucket (10 tokens, 0.1 back per
//     success; each retryable failure takes one) stops retries while more
//     than half the tokens are gone, so that retries do not multiply load
//     on a server that is down.
//
// It sets no "timeout": a unary call's deadline is [WithDefaultTimeout]'s
// business (10s when the caller sets none), and a service-config timeout
// would also cut callers' own longer deadlines and defeat
// WithDefaultTimeout(0). A config that wants one adds "timeout": "5s" to a
// methodConfig entry; grpc then applies the earlier of it and the caller's
// deadline.
//
// A config the name resolver supplies (DNS TXT records, xDS) takes
// precedence over it. WithServiceConfig("") applies none at all.
const DefaultServiceConfig = `{
  "methodConfig": [
    {
      "name": [{"service": "Greeter"}, {"service": "helloworld.Greeter"}],
      "retryPolicy": {
        "maxAttempts": 4,
        "initialBackoff": "0.1s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"]
      }
    }
  ],
  "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}
}`

// ServiceConfigWithHealthCheck returns serviceConfig (grpc's JSON form; ""
// for [DefaultServiceConfig]) with client-side health checking of service
// turned on and the round_robin load balancer, which is what acts on it: the
// client then watches each backend's health (grpc.health.v1.Health/Watch)
// and sends calls only to backends where service is SERVING. Pass the result
// to [WithServiceConfig]. Use [ServiceName] for service, or "" for the
// whole server.
//
// It fails when serviceConfig is not a JSON object. A Client needs no extra
// import for this: greeter links grpc's health-checking client in.
func ServiceConfigWithHealthCheck(serviceConfig, service string) (string, error) {
	if serviceConfig == "" {
		serviceConfig = DefaultServiceConfig
	}
	var sc map[string]any
	if err := json.Unmarshal([]byte(serviceConfig), &sc); err != nil {
		return "", fmt.Errorf("greeter: ServiceConfigWithHealthCheck: %w", err)
	}
	if sc == nil {
		sc = map[string]any{}
	}
	sc["healthCheckConfig"] = map[string]any{"serviceName": service}
	sc["loadBalancingConfig"] = []any{map[string]any{"round_robin": map[string]any{}}}
	b, err := json.Marshal(sc)
	if err != nil {
		return "", fmt.Errorf("greeter: ServiceConfigWithHealthCheck: %w", err)
	}
	return string(b), nil
}
