package rpc

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's prometheus collectors (always present; they
// are registered only when Config.Registerer is set).
type metrics struct {
	calls       *prometheus.CounterVec   // program, procedure, status
	duration    *prometheus.HistogramVec // program, procedure
	inflight    prometheus.Gauge
	connections prometheus.Gauge
	drcHits     prometheus.Counter
	rejected    *prometheus.CounterVec // reason
}

// Reasons a record is rejected (label of rwxfs_rpc_records_rejected_total).
const (
	rejectTooLong   = "too_long"
	rejectTruncated = "truncated"
	rejectGarbage   = "garbage_header"
	rejectOversized = "udp_oversized"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rwxfs_rpc_calls_total",
			Help: "RPC calls answered, by program, procedure and reply status.",
		}, []string{"program", "procedure", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rwxfs_rpc_call_duration_seconds",
			Help:    "Time from a call's decoding to its reply being queued.",
			Buckets: prometheus.ExponentialBuckets(20e-6, 4, 10),
		}, []string{"program", "procedure"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rwxfs_rpc_calls_in_flight",
			Help: "RPC calls being processed.",
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rwxfs_rpc_connections_open",
			Help: "Open TCP connections.",
		}),
		drcHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rwxfs_rpc_drc_hits_total",
			Help: "Retransmitted calls answered or dropped by the duplicate request cache.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rwxfs_rpc_records_rejected_total",
			Help: "Records refused: too long, truncated, undecodable header, UDP reply too big.",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.calls, m.duration, m.inflight, m.connections, m.drcHits, m.rejected}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("rpc: metrics already registered (one Server per Registerer): %w", err)
			}
			return nil, fmt.Errorf("rpc: register metrics: %w", err)
		}
	}
	return m, nil
}
