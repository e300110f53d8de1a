// Package leastrequest is greeter's load-balancing policy
// "greeter_least_request": each call goes to the ready backend with the
// fewest calls in flight from this client, ties broken in turn. Unlike
// grpc's least_request_experimental, which compares two backends picked
// at random, it compares them all, so that a backend holding calls (slow,
// overloaded, stuck) gets a new call only when every other backend holds
// as many: meant for the few to few dozen backends a greeter client sees.
//
// It is built like grpc's own petiole policies (round_robin,
// weighted_round_robin): one pick_first child per endpoint, through
// endpointsharding, so that client-side health checking
// ("healthCheckConfig" in the service config) and outlier detection work
// under it. Importing the package registers it with grpc's balancer
// registry, which is global: select it by service config,
// {"loadBalancingConfig": [{"greeter_least_request": {}}]}.
package leastrequest

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

// Name is the policy's name in a service config.
const Name = "greeter_least_request"

func init() {
	balancer.Register(builder{})
}

type config struct {
	serviceconfig.LoadBalancingConfig `json:"-"`
}

type builder struct{}

func (builder) Name() string { return Name }

// ParseConfig accepts an empty object: the policy has no settings.
func (builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(js, &fields); err != nil {
		return nil, fmt.Errorf("%s: config %s: %v", Name, js, err)
	}
	for k := range fields {
		return nil, fmt.Errorf("%s: unknown setting %q: the policy has none; give {}", Name, k)
	}
	return &config{}, nil
}

func (builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	b := &lrBalancer{ClientConn: cc, counts: resolver.NewEndpointMap[*atomic.Int64]()}
	b.child = endpointsharding.NewBalancer(b, opts, balancer.Get(pickfirst.Name).Build, endpointsharding.Options{})
	return b
}

// lrBalancer embeds the channel's ClientConn to catch the UpdateState
// calls of its endpointsharding child and put its own picker in.
type lrBalancer struct {
	balancer.ClientConn
	child balancer.Balancer

	mu     sync.Mutex
	counts *resolver.EndpointMap[*atomic.Int64] // calls in flight, per endpoint
	next   atomic.Uint64                        // where a tie is broken, shared by pickers
}

func (b *lrBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	return b.child.UpdateClientConnState(balancer.ClientConnState{
		// Client-side health checks and outlier detection act through
		// the pick_first children's health listener.
		ResolverState: pickfirst.EnableHealthListener(s.ResolverState),
	})
}

func (b *lrBalancer) ResolverError(err error) { b.child.ResolverError(err) }
func (b *lrBalancer) ExitIdle()               { b.child.ExitIdle() }
func (b *lrBalancer) Close()                  { b.child.Close() }

// UpdateSubConnState is never called: the children own the SubConns and
// listen to them themselves.
func (b *lrBalancer) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

// UpdateState receives endpointsharding's state: with ready endpoints, a
// picker over them; without, endpointsharding's own (connecting, or
// failing with the reason).
func (b *lrBalancer) UpdateState(s balancer.State) {
	var ready []endpointsharding.ChildState
	for _, c := range endpointsharding.ChildStatesFromPicker(s.Picker) {
		if c.State.ConnectivityState == connectivity.Ready {
			ready = append(ready, c)
		}
	}
	if len(ready) == 0 {
		b.ClientConn.UpdateState(s)
		return
	}
	b.mu.Lock()
	live := resolver.NewEndpointMap[bool]()
	p := &picker{next: &b.next, endpoints: make([]endpoint, 0, len(ready))}
	for _, c := range ready {
		live.Set(c.Endpoint, true)
		n, ok := b.counts.Get(c.Endpoint)
		if !ok {
			n = new(atomic.Int64)
			b.counts.Set(c.Endpoint, n)
		}
		p.endpoints = append(p.endpoints, endpoint{picker: c.State.Picker, inFlight: n})
	}
	for e := range b.counts.All() {
		if _, ok := live.Get(e); !ok {
			b.counts.Delete(e) // counted afresh if it comes back
		}
	}
	b.mu.Unlock()
	b.ClientConn.UpdateState(balancer.State{ConnectivityState: connectivity.Ready, Picker: p})
}

type endpoint struct {
	picker   balancer.Picker
	inFlight *atomic.Int64
}

type picker struct {
	next      *atomic.Uint64
	endpoints []endpoint
}

// Pick finds the fewest calls in flight on any ready endpoint and takes
// the endpoints that have that few in turn; the count goes down when the
// call ends, however it ends.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	least, ties := p.endpoints[0].inFlight.Load(), 1
	for _, e := range p.endpoints[1:] {
		switch c := e.inFlight.Load(); {
		case c < least:
			least, ties = c, 1
		case c == least:
			ties++
		}
	}
	turn := int(p.next.Add(1) % uint64(ties))
	best := &p.endpoints[0]
	for i := range p.endpoints {
		// Counts may have moved since the first pass: the last
		// endpoint at or under least is taken if the turn is not met.
		if e := &p.endpoints[i]; e.inFlight.Load() <= least {
			best = e
			if turn == 0 {
				break
			}
			turn--
		}
	}
	res, err := best.picker.Pick(info)
	if err != nil {
		return res, err
	}
	best.inFlight.Add(1)
	done := res.Done
	res.Done = func(d balancer.DoneInfo) {
		best.inFlight.Add(-1)
		if done != nil {
			done(d)
		}
	}
	return res, nil
}
