package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one measured case.
type result struct {
	Label    string
	Workload string
	Conns    int
	Inflight int
	Ops      int64
	Bytes    int64
	Elapsed  time.Duration
	Lat      []time.Duration // per call, sorted
	Note     string          // what the case did beyond its name (no spaces)
	Err      error
}

// pct returns the p-th percentile latency (nearest rank), 0 without calls.
func (r *result) pct(p float64) time.Duration {
	if len(r.Lat) == 0 {
		return 0
	}
	i := int(p/100*float64(len(r.Lat))+0.5) - 1
	return r.Lat[max(0, min(i, len(r.Lat)-1))]
}

func (r *result) opsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

func (r *result) mbPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/1e3) }

// line formats r as one machine-readable line of key=value fields.
func (r *result) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "result label=%s workload=%s conns=%d inflight=%d ops=%d bytes=%d secs=%.3f ops_s=%.1f mb_s=%.1f",
		field(r.Label), r.Workload, r.Conns, r.Inflight, r.Ops, r.Bytes, r.Elapsed.Seconds(), r.opsPerSec(), r.mbPerSec())
	fmt.Fprintf(&b, " p50_us=%s p90_us=%s p99_us=%s p999_us=%s max_us=%s",
		us(r.pct(50)), us(r.pct(90)), us(r.pct(99)), us(r.pct(99.9)), us(r.pct(100)))
	if r.Note != "" {
		fmt.Fprintf(&b, " note=%s", field(r.Note))
	}
	if r.Err != nil {
		fmt.Fprintf(&b, " error=%s", field(r.Err.Error()))
	}
	return b.String()
}

// field makes s one whitespace-free field.
func field(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Join(strings.Fields(s), "_")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/1e6) }

// writeTable prints results as an aligned table.
func writeTable(w io.Writer, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tworkload\tconns\tin flight\tops\tsecs\tops/s\tMB/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t note")
	for _, r := range rs {
		note := r.Note
		if r.Err != nil {
			note = "ERROR " + r.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.2f\t%.0f\t%.1f\t%s\t%s\t%s\t%s\t%s\t %s\n",
			r.Label, r.Workload, r.Conns, r.Inflight, r.Ops, r.Elapsed.Seconds(), r.opsPerSec(), r.mbPerSec(),
			ms(r.pct(50)), ms(r.pct(90)), ms(r.pct(99)), ms(r.pct(99.9)), ms(r.pct(100)), note)
	}
	tw.Flush()
}

// mergeLatencies joins and sorts per-worker samples.
func mergeLatencies(parts [][]time.Duration) []time.Duration {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]time.Duration, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	slices.Sort(out)
	return out
}
