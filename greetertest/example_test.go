package greetertest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greetertest"
)

// Start a greeter server in process and call it. In a test, prefer
// greetertest.NewClient(t), which does this in one call and cleans up with
// t.Cleanup.
func ExampleNewServer() {
	srv, err := greetertest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	c, err := srv.Client(greeter.WithServiceName(greeter.HelloworldServiceName))
	if err != nil {
		log.Fatal(err)
	}
	msg, err := c.SayHello(context.Background(), "bufconn")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(msg)
	// Output: Hello, bufconn!
}
