package leastrequest

import (
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/balancer"
)

// stubPicker stands for an endpoint's pick_first child, which picks its
// one SubConn.
type stubPicker struct{ picked *int }

func (p stubPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	*p.picked++
	return balancer.PickResult{}, nil
}

func newPicker(inFlight ...int64) (*picker, []int) {
	picked := make([]int, len(inFlight))
	p := &picker{next: new(atomic.Uint64)}
	for i, n := range inFlight {
		c := new(atomic.Int64)
		c.Store(n)
		p.endpoints = append(p.endpoints, endpoint{picker: stubPicker{&picked[i]}, inFlight: c})
	}
	return p, picked
}

// Each pick goes to an endpoint with the fewest in flight, which then has
// one more until the call is done.
func TestPickLeast(t *testing.T) {
	p, picked := newPicker(3, 1, 2)
	res, err := p.Pick(balancer.PickInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if picked[1] != 1 || p.endpoints[1].inFlight.Load() != 2 {
		t.Fatalf("picked %v, in flight %d; want endpoint 1, now with 2", picked, p.endpoints[1].inFlight.Load())
	}
	res.Done(balancer.DoneInfo{})
	if n := p.endpoints[1].inFlight.Load(); n != 1 {
		t.Errorf("in flight after Done = %d; want 1", n)
	}
}

// Ties are taken in turn, the busy endpoint skipped.
func TestPickTiesInTurn(t *testing.T) {
	p, picked := newPicker(1, 0, 0, 0)
	for range 300 {
		res, err := p.Pick(balancer.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		res.Done(balancer.DoneInfo{})
	}
	if picked[0] != 0 || picked[1] != 100 || picked[2] != 100 || picked[3] != 100 {
		t.Errorf("picks = %v; want 0 for the busy endpoint and 100 each for the others", picked)
	}
}

func TestParseConfig(t *testing.T) {
	if _, err := (builder{}).ParseConfig([]byte(`{}`)); err != nil {
		t.Errorf("ParseConfig({}) = %v", err)
	}
	for _, bad := range []string{`{"choiceCount": 2}`, `[]`, `nope`} {
		if _, err := (builder{}).ParseConfig([]byte(bad)); err == nil {
			t.Errorf("ParseConfig(%s) accepted", bad)
		}
	}
}
