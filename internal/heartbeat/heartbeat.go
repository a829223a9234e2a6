// Package heartbeat keeps the leases of a Manager's running jobs alive: it
// extends them all in one broker call per interval and tells the owner of
// each lease that was lost (the job was recovered by another worker, or
// cancelled), so that its processor can be stopped.
package heartbeat

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aibos/worker/broker"
)

// Lease is one job lease to keep alive.
type Lease struct {
	Params *broker.JobLeaseParams
	// Lost is called, from the Heartbeater's goroutine, when the broker
	// reports the lease lost or the job gone; err says which.
	Lost func(err error)
}

// Config configures a Heartbeater.
type Config struct {
	// Broker extends the leases. Required.
	Broker broker.Broker
	// Interval between extensions; it also bounds each broker call.
	// Required.
	Interval time.Duration
	// LeaseDuration is what each lease is extended to, from the broker's
	// now. Required.
	LeaseDuration time.Duration
	// Leases returns the leases to extend now. Called once per interval.
	Leases func() []Lease
	// Logger receives errors of the whole batch.
	Logger *slog.Logger
}

// Heartbeater extends leases every Interval. Start it once, then Stop it
// once.
type Heartbeater struct {
	cfg  Config
	stop chan struct{}
	done chan struct{}
}

// New returns a Heartbeater for cfg.
func New(cfg Config) *Heartbeater {
	return &Heartbeater{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
}

// Start extends leases every Interval in the background, the first time
// one Interval from now.
func (h *Heartbeater) Start() { go h.run() }

// Stop ends the loop and waits for an extension in flight.
func (h *Heartbeater) Stop() {
	close(h.stop)
	<-h.done
}

func (h *Heartbeater) run() {
	defer close(h.done)
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.beat()
	}
}

func (h *Heartbeater) beat() {
	leases := h.cfg.Leases()
	if len(leases) == 0 {
		return
	}
	ps := make([]*broker.JobLeaseParams, len(leases))
	for i, l := range leases {
		ps[i] = l.Params
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Interval)
	errs, err := h.cfg.Broker.JobLeaseExtend(ctx, ps, h.cfg.LeaseDuration)
	cancel()
	if err != nil {
		h.cfg.Logger.Error("extend leases", "jobs", len(ps), "err", err)
		return
	}
	for i, e := range errs {
		if i < len(leases) && (errors.Is(e, broker.ErrLeaseLost) || errors.Is(e, broker.ErrNotFound)) {
			leases[i].Lost(e)
		}
	}
}
