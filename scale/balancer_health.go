package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Start runs the active health checks in the background until ctx is done
// or Close is called: one round at once, then one every
// HealthCheck.Interval. A round checks every node that is in rotation or
// whose cooldown has passed. Start does nothing if active checks are
// disabled (a negative Interval), if it was called before, or after Close.
// While the checks run, only a passing check takes an ejected node back.
func (b *Balancer) Start(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg.HealthCheck.Interval <= 0 || b.started || b.closed { // <= 0: disabled, or a Balancer not made by NewBalancer
		return
	}
	b.started, b.active = true, true
	ctx, b.cancel = context.WithCancel(ctx)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() {
			b.mu.Lock()
			b.active = false
			b.mu.Unlock()
		}()
		t := time.NewTicker(b.cfg.HealthCheck.Interval)
		defer t.Stop()
		for {
			b.checkRound(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops the active health checks and waits for them to finish. The
// Balancer still serves Next and Do afterwards, taking ejected nodes back
// by trial after their cooldown. Close may be called more than once.
func (b *Balancer) Close() {
	b.mu.Lock()
	b.closed = true
	cancel := b.cancel
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	b.wg.Wait()
}

// checkRound checks, concurrently, every node due for a check.
func (b *Balancer) checkRound(ctx context.Context) {
	now := b.cfg.Now()
	var due []*node
	b.mu.Lock()
	for _, n := range b.nodes {
		if !n.ejected || !now.Before(n.until) {
			due = append(due, n)
		}
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := b.ejections(n)
			err := b.probe(ctx, n)
			if ctx.Err() == nil { // a check cut short by Close says nothing about the node
				b.setHealth(n, gen, err)
			}
		}()
	}
	wg.Wait()
}

// CheckHealth probes node (an Addr of the configured nodes) once, now, and
// updates its state: a failing check ejects it for Cooldown, a passing one
// takes it back. It returns nil when the node is healthy: the seed's
// checkHealth. Safe for concurrent use.
func (b *Balancer) CheckHealth(ctx context.Context, node string) error {
	for _, n := range b.nodes {
		if n.Addr == node {
			gen := b.ejections(n)
			err := b.probe(ctx, n)
			b.setHealth(n, gen, err)
			return err
		}
	}
	return fmt.Errorf("scale: check health of %q: not a node of balancer %q", node, b.cfg.Name)
}

// probe GETs n's health endpoint within HealthCheck.Timeout; any 2xx passes.
func (b *Balancer) probe(ctx context.Context, n *node) error {
	hc := b.cfg.HealthCheck
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	u := url.URL{Scheme: hc.Scheme, Host: n.Addr, Path: hc.Path}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("check health of %s: %w", n.Addr, err)
	}
	resp, err := b.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it would repeat the URL
		}
		return fmt.Errorf("check health of %s: GET %s: %w", n.Addr, hc.Path, err)
	}
	// Drain a little so the connection can be reused for the next check.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("check health of %s: GET %s answered %s", n.Addr, hc.Path, resp.Status)
	}
	return nil
}

func (b *Balancer) ejections(n *node) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return n.ejections
}

// setHealth records on n the outcome of a check that began when n had
// been ejected gen times. A pass does not take back a node ejected while
// the check ran: that ejection saw newer evidence.
func (b *Balancer) setHealth(n *node, gen int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if n.ejected {
			n.until = b.cfg.Now().Add(b.cfg.Cooldown)
			return
		}
		b.ejectLocked(n, "health check failed", err)
		return
	}
	if n.ejections != gen {
		return
	}
	n.failures = 0
	if n.ejected {
		n.ejected = false
		b.cfg.Logger.Info("balancer: node healthy again", "balancer", b.cfg.Name, "node", n.Addr)
	}
}
