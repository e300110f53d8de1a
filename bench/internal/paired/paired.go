// Package paired compares rounds of two measurements taken in turn: each
// round's ratio, so that a machine's drift between rounds weighs on both
// sides alike.
package paired

import "slices"

// Ratio returns the median of the ratios xs[i]/base[i] and in how many
// rounds ok(xs[i], base[i]) held.
func Ratio(xs, base []float64, ok func(x, b float64) bool) (float64, int) {
	rs := make([]float64, len(xs))
	n := 0
	for i := range xs {
		rs[i] = xs[i] / base[i]
		if ok(xs[i], base[i]) {
			n++
		}
	}
	return Median(rs), n
}

// Median returns the median of xs, which it leaves unchanged.
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
