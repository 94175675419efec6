package chunkstore

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// nodeMetrics are a node's Prometheus metrics, on a registry of the node's
// own (several nodes may run in one process, as in tests).
type nodeMetrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec   // op, code
	latency   *prometheus.HistogramVec // op
	bytesIn   prometheus.Counter
	bytesOut  prometheus.Counter
	blocks    prometheus.Gauge
	corrupt   *prometheus.CounterVec // source: read, scrub
	scrubbed  prometheus.Counter
	scrubRuns prometheus.Counter
}

// Operation labels of the request metrics.
const (
	opPut      = "put"
	opGet      = "get"
	opGetRange = "get_range"
	opHead     = "head"
	opDelete   = "delete"
	opList     = "list"
	opOther    = "other"
)

func newNodeMetrics(usage func() (DiskUsage, uint64, error)) *nodeMetrics {
	reg := prometheus.NewRegistry()
	m := &nodeMetrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rwxfs_chunk_requests_total", Help: "Chunk node HTTP requests by operation and status code.",
		}, []string{"op", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rwxfs_chunk_request_duration_seconds",
			Help:    "Chunk node HTTP request latency by operation (until the handler returns).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
		}, []string{"op"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rwxfs_chunk_bytes_in_total", Help: "Encoded block bytes received by PUT requests that were stored.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rwxfs_chunk_bytes_out_total", Help: "Response body bytes sent by GET requests.",
		}),
		blocks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rwxfs_chunk_blocks", Help: "Blocks stored on the node (counted at start, kept up to date by puts, deletes, quarantines and scrub passes).",
		}),
		corrupt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rwxfs_chunk_corrupt_blocks_total", Help: "Corrupt blocks found on disk and quarantined, by who found them (read, scrub).",
		}, []string{"source"}),
		scrubbed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rwxfs_chunk_scrub_bytes_total", Help: "Stored bytes verified by scrub.",
		}),
		scrubRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rwxfs_chunk_scrub_passes_total", Help: "Completed scrub passes over all blocks.",
		}),
	}
	free := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rwxfs_chunk_free_bytes", Help: "Bytes free for blocks on the data folder's file system, reserve subtracted.",
	}, func() float64 {
		u, reserve, err := usage()
		if err != nil || u.Free < reserve {
			return 0
		}
		return float64(u.Free - reserve)
	})
	capacity := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rwxfs_chunk_capacity_bytes", Help: "Size of the data folder's file system.",
	}, func() float64 {
		u, _, err := usage()
		if err != nil {
			return 0
		}
		return float64(u.Total)
	})
	m.corrupt.WithLabelValues("read")
	m.corrupt.WithLabelValues("scrub")
	reg.MustRegister(m.requests, m.latency, m.bytesIn, m.bytesOut, m.blocks, m.corrupt, m.scrubbed, m.scrubRuns, free, capacity,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// statusWriter records the status code and body bytes of a response.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (m *nodeMetrics) observe(op string, w *statusWriter, start time.Time) {
	code := w.code
	if code == 0 {
		code = http.StatusOK
	}
	m.requests.WithLabelValues(op, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if op == opGet || op == opGetRange {
		m.bytesOut.Add(float64(w.bytes))
	}
}
