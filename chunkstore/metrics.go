package chunkstore

import (
	"io"
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
	corrupt   *prometheus.CounterVec // source: read, scrub, client
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

// Sources of the corrupt-block metric: the node's own read path (a bad
// header or length), scrub, or a client's read repair of a copy whose
// frames failed the client's verification.
const (
	sourceRead   = "read"
	sourceScrub  = "scrub"
	sourceClient = "client"
)

func newNodeMetrics(usage func() (DiskUsage, uint64, error), blocks func() int) *nodeMetrics {
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
		corrupt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rwxfs_chunk_corrupt_blocks_total", Help: "Corrupt blocks found on disk, by who found them: read and scrub (quarantined by the node), client (replaced by a client's read repair).",
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
	blockCount := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rwxfs_chunk_blocks", Help: "Blocks stored on the node (the size of its in-memory block index).",
	}, func() float64 { return float64(blocks()) })
	m.corrupt.WithLabelValues(sourceRead)
	m.corrupt.WithLabelValues(sourceScrub)
	m.corrupt.WithLabelValues(sourceClient)
	reg.MustRegister(m.requests, m.latency, m.bytesIn, m.bytesOut, blockCount, m.corrupt, m.scrubbed, m.scrubRuns, free, capacity,
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

// ReadFrom passes a copy to the underlying writer's ReadFrom, so that a
// file sent by io.Copy reaches net/http's sendfile path.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observeLocal counts a request of a client in the process (PutLocal) as
// the HTTP request it stands for.
func (m *nodeMetrics) observeLocal(op string, err error, start time.Time) {
	m.requests.WithLabelValues(op, strconv.Itoa(localStatus(err))).Inc()
	m.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

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
