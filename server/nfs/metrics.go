package nfs

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Handle rejection reasons (the label of rwxfs_nfs_handle_rejections_total).
const (
	reasonBadHandle = "badhandle" // malformed or forged: NFS3ERR_BADHANDLE
	reasonStale     = "stale"     // inode or volume gone: NFS3ERR_STALE
	reasonExport    = "export"    // client outside the volume's networks: NFS3ERR_ACCES
)

// metrics are what is NFS-specific; per-procedure counts and latencies are
// the rpc layer's.
type metrics struct {
	rejects *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rwxfs_nfs_handle_rejections_total",
			Help: "File handles refused, by reason: badhandle (malformed or forged), stale (inode or volume gone), export (client not allowed).",
		}, []string{"reason"}),
	}
	for _, r := range []string{reasonBadHandle, reasonStale, reasonExport} {
		m.rejects.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(m.rejects); err != nil {
			return nil, fmt.Errorf("nfs: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) reject(reason string) { m.rejects.WithLabelValues(reason).Inc() }
