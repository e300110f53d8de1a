package greeter_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// Check bearer tokens against a fixed set, in constant time. The server
// takes the validator with WithTokenValidator; a client sends its token
// with WithBearerToken, over TLS only.
func ExampleStaticTokens() {
	validate, err := greeter.StaticTokens(map[string]string{"ci": "3f9c2a7d0b1e4c58"})
	if err != nil {
		log.Fatal(err)
	}
	id, err := validate(context.Background(), "3f9c2a7d0b1e4c58")
	fmt.Println(id, err)
	_, err = validate(context.Background(), "guess")
	fmt.Println(err != nil)

	srv, err := greeter.NewServer(greeter.WithTokenValidator(validate))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	_, err = greeter.NewClient("localhost:50051", greeter.WithInsecure(), greeter.WithBearerToken("3f9c2a7d0b1e4c58"))
	fmt.Println(err)
	// Output:
	// ci <nil>
	// true
	// greeter: WithBearerToken and WithInsecure both given: a bearer token is never sent over plaintext; use WithTLS or WithTLSFiles
}

// Limit each client to a rate of calls; a call over it is refused with
// ResourceExhausted and a RetryInfo detail that says when to try again.
func ExampleWithRateLimit() {
	addr, stop := serve(greeter.WithRateLimit(0.01, 1)) // one call each 100s, no burst
	defer stop()
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		msg, err := c.SayHello(context.Background(), "you")
		if err != nil {
			st := status.Convert(err)
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok {
					fmt.Println(st.Code(), "retry after", ri.GetRetryDelay().AsDuration().Round(10*time.Second))
				}
			}
			continue
		}
		fmt.Println(msg)
	}
	// Output:
	// Hello, you!
	// ResourceExhausted retry after 1m40s
}
