package auth

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Bearer is per-RPC credentials that send a bearer token in the
// authorization header, over an encrypted connection only.
type Bearer string

// GetRequestMetadata returns the authorization header, or an error when
// the connection is not encrypted: the token is never sent in plaintext.
func (b Bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	ri, _ := credentials.RequestInfoFromContext(ctx)
	if err := credentials.CheckSecurityLevel(ri.AuthInfo, credentials.PrivacyAndIntegrity); err != nil {
		return nil, status.Error(codes.Unauthenticated, fmt.Sprintf("bearer token not sent: the connection is not encrypted (%v); use TLS (greeter.WithTLS or WithTLSFiles; on the greeter CLI, --tls or --tls-ca)", err))
	}
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is true: grpc refuses to build a plaintext
// client with these credentials.
func (Bearer) RequireTransportSecurity() bool { return true }
