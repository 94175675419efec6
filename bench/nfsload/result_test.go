package main

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	r := result{}
	if r.pct(50) != 0 {
		t.Error("percentile of no samples is not 0")
	}
	for i := 1; i <= 1000; i++ {
		r.Lat = append(r.Lat, time.Duration(i)*time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 500}, {90, 900}, {99, 990}, {99.9, 999}, {100, 1000}, {0, 1}} {
		if got := r.pct(c.p); got != c.want*time.Microsecond {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want*time.Microsecond)
		}
	}
	r.Lat = []time.Duration{7}
	if r.pct(50) != 7 || r.pct(99.9) != 7 {
		t.Error("a single sample is not every percentile")
	}
}

func TestLineIsOneFieldPerKey(t *testing.T) {
	r := result{Label: "my server", Workload: "read", Conns: 8, Inflight: 16, Ops: 10, Bytes: 10 << 20,
		Elapsed: 2 * time.Second, Lat: []time.Duration{time.Millisecond}, Note: "a b", Err: errors.New("x: y z")}
	l := r.line()
	rs := parseLines(t, l)
	if len(rs) != 1 {
		t.Fatalf("line %q", l)
	}
	f := rs[0]
	if f["label"] != "my_server" || f["ops_s"] != "5.0" || f["mb_s"] != "5.2" || f["p50_us"] != "1000" || f["note"] != "a_b" || f["error"] != "x:_y_z" {
		t.Errorf("fields %v", f)
	}
	var tb strings.Builder
	writeTable(&tb, []result{r})
	if !strings.Contains(tb.String(), "ERROR x: y z") {
		t.Errorf("table hides the error:\n%s", tb.String())
	}
}

func TestDriveCountsEveryCall(t *testing.T) {
	var calls atomic.Int64
	seen := make([]atomic.Bool, 500)
	r := drive(context.Background(), 7, 0, 500, func(_ context.Context, w int, i int64) (int64, error) {
		if w < 0 || w >= 7 {
			t.Errorf("worker %d", w)
		}
		if seen[i].Swap(true) {
			t.Errorf("call %d made twice", i)
		}
		calls.Add(1)
		return 3, nil
	})
	if r.Err != nil || r.Ops != 500 || calls.Load() != 500 || r.Bytes != 1500 || len(r.Lat) != 500 || r.Inflight != 7 {
		t.Fatalf("ops %d calls %d bytes %d err %v", r.Ops, calls.Load(), r.Bytes, r.Err)
	}
}

func TestDriveStopsAtFirstError(t *testing.T) {
	boom := errors.New("boom")
	r := drive(context.Background(), 4, 0, 1000, func(ctx context.Context, _ int, i int64) (int64, error) {
		if i == 10 {
			return 0, boom
		}
		return 0, ctx.Err()
	})
	if !errors.Is(r.Err, boom) || r.Ops >= 1000 {
		t.Fatalf("err %v after %d calls", r.Err, r.Ops)
	}
}

func TestDriveForADuration(t *testing.T) {
	r := drive(context.Background(), 2, 20*time.Millisecond, 0, func(context.Context, int, int64) (int64, error) {
		return 0, nil
	})
	if r.Err != nil || r.Ops == 0 || r.Elapsed < 20*time.Millisecond {
		t.Fatalf("ops %d in %v, err %v", r.Ops, r.Elapsed, r.Err)
	}
}
