package bench

import (
	"math"
	"slices"
	"time"
)

// summarize merges the per-worker latencies (nanoseconds) of one run
// that measured for elapsed into throughput and percentiles.
func summarize(perWorker [][]int64, elapsed time.Duration) sample {
	var all []int64
	for _, l := range perWorker {
		all = append(all, l...)
	}
	slices.Sort(all)
	s := sample{Ops: len(all), Seconds: elapsed.Seconds()}
	if elapsed > 0 {
		s.OpsPerSec = float64(len(all)) / elapsed.Seconds()
	}
	s.P50 = ms(percentile(all, 0.50))
	s.P99 = ms(percentile(all, 0.99))
	s.P999 = ms(percentile(all, 0.999))
	return s
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// percentile returns the nearest-rank q-quantile of sorted (0 when empty).
func percentile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// median is the median of xs (the mean of the middle two for an even
// count; 0 when empty). xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianSample is the per-metric median of the rounds' samples; counts
// (ops, errors) are summed over the rounds.
func medianSample(rounds []sample) sample {
	var m sample
	var tput, p50, p99, p999 []float64
	for _, s := range rounds {
		tput = append(tput, s.OpsPerSec)
		p50 = append(p50, s.P50)
		p99 = append(p99, s.P99)
		p999 = append(p999, s.P999)
		m.Ops += s.Ops
		m.Overloaded += s.Overloaded
		m.Errors += s.Errors
		m.Siblings += s.Siblings
		m.Seconds += s.Seconds
		if m.FirstError == "" {
			m.FirstError = s.FirstError
		}
	}
	m.OpsPerSec, m.P50, m.P99, m.P999 = median(tput), median(p50), median(p99), median(p999)
	return m
}
