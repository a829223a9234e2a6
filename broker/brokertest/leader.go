package brokertest

import (
	"errors"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
)

// The leader case checks the optional broker.LeaderStore capability. A
// broker without it skips it.

// testLeaderLease: one holder at a time; the holder extends its lease on
// the broker's clock; a released or expired lease goes to the next caller;
// racing callers elect exactly one; bad params are an *InvalidError.
func testLeaderLease(s *bundle) {
	ls, ok := s.b.(broker.LeaderStore)
	if !ok {
		s.t.Skip("broker does not implement broker.LeaderStore")
	}
	acquire := func(name, holder string, ttl time.Duration) bool {
		s.t.Helper()
		held, err := ls.LeaderAcquire(s.ctx, &broker.LeaderParams{Name: name, Holder: holder, TTL: ttl})
		if err != nil {
			s.t.Fatalf("LeaderAcquire(%s, %s): %v", name, holder, err)
		}
		return held
	}
	release := func(name, holder string) {
		s.t.Helper()
		if err := ls.LeaderRelease(s.ctx, &broker.LeaderParams{Name: name, Holder: holder}); err != nil {
			s.t.Fatalf("LeaderRelease(%s, %s): %v", name, holder, err)
		}
	}

	// Mutual exclusion, extension by the holder, release.
	const name = "brokertest.leader"
	if !acquire(name, "a", longLease) {
		s.t.Fatal("LeaderAcquire of a free lease returned false")
	}
	if acquire(name, "b", longLease) {
		s.t.Fatal("b acquired a lease a holds")
	}
	if !acquire(name, "a", longLease) {
		s.t.Fatal("a could not extend the lease it holds")
	}
	release(name, "b") // not b's: must change nothing
	if acquire(name, "b", longLease) {
		s.t.Fatal("b acquired a's lease after b released it (only the holder may release)")
	}
	release(name, "a")
	if !acquire(name, "b", longLease) {
		s.t.Fatal("b could not acquire a lease a released")
	}

	// An extension moves the expiry: a lease taken for 1s and extended for
	// longLease is still held once the broker's clock is past the 1s.
	const ext = "brokertest.leader.extend"
	t0 := s.now()
	if !acquire(ext, "a", time.Second) || !acquire(ext, "a", longLease) {
		s.t.Fatal("a could not acquire and extend a free lease")
	}
	s.waitPast(t0.Add(time.Second + 100*time.Millisecond))
	if acquire(ext, "b", longLease) {
		s.t.Fatal("b acquired a's lease once its first TTL had passed, though a extended it")
	}

	// Failover: an expired lease goes to the next caller, for good.
	const exp = "brokertest.leader.expire"
	if !acquire(exp, "a", shortLease) {
		s.t.Fatal("a could not acquire a free lease")
	}
	s.waitFor("b to take over a's expired lease", func() bool { return acquire(exp, "b", longLease) })
	if acquire(exp, "a", longLease) {
		s.t.Fatal("a re-acquired its expired lease after b took it over")
	}

	// Racing callers: exactly one wins.
	const race = "brokertest.leader.race"
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	for _, h := range []string{"h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held, err := ls.LeaderAcquire(s.ctx, &broker.LeaderParams{Name: race, Holder: h, TTL: longLease})
			if err != nil {
				s.t.Errorf("racing LeaderAcquire(%s): %v", h, err)
				return
			}
			if held {
				mu.Lock()
				winners = append(winners, h)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		s.t.Fatalf("8 racing LeaderAcquire calls on a free lease: %d held it (%v), want exactly 1", len(winners), winners)
	}

	for _, c := range []struct {
		what, field string
		p           *broker.LeaderParams
	}{
		{"an empty name", "name", &broker.LeaderParams{Holder: "a", TTL: time.Second}},
		{"a name with braces", "name", &broker.LeaderParams{Name: "a{b}", Holder: "a", TTL: time.Second}},
		{"an empty holder", "holder", &broker.LeaderParams{Name: "x", TTL: time.Second}},
		{"a zero TTL", "ttl", &broker.LeaderParams{Name: "x", Holder: "a"}},
	} {
		_, err := ls.LeaderAcquire(s.ctx, c.p)
		var ie *broker.InvalidError
		if !errors.Is(err, broker.ErrInvalidJob) || !errors.As(err, &ie) || ie.Field != c.field {
			s.t.Fatalf("LeaderAcquire with %s: %v; want an *InvalidError naming %q", c.what, err, c.field)
		}
	}
}
