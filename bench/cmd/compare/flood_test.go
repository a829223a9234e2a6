package main

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
)

// TestIdealWaits: the ideal scheduler gives each slot-free moment to the
// oldest job that exists by then; a job waits from its add to its slot, or
// the limit when no slot is left for it.
func TestIdealWaits(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name                  string
		added, durable, freed []time.Duration
		limit                 time.Duration
		want                  []time.Duration
	}{
		{name: "a slot frees after the add", added: []time.Duration{1 * ms}, durable: []time.Duration{1 * ms},
			freed: []time.Duration{0, 3 * ms, 5 * ms}, limit: time.Second, want: []time.Duration{2 * ms}},
		{name: "the wait counts from the add, the slot from when the job exists", added: []time.Duration{1 * ms}, durable: []time.Duration{4 * ms},
			freed: []time.Duration{3 * ms, 5 * ms}, limit: time.Second, want: []time.Duration{4 * ms}},
		{name: "a slot freed at the job's arrival is its", added: []time.Duration{2 * ms}, durable: []time.Duration{2 * ms},
			freed: []time.Duration{2 * ms}, limit: time.Second, want: []time.Duration{0}},
		{name: "four jobs at once take the round's slots in turn", // B-E of one tick, slots in step
			added:   []time.Duration{0, ms / 10, 2 * ms / 10, 3 * ms / 10},
			durable: []time.Duration{ms / 10, 2 * ms / 10, 3 * ms / 10, 4 * ms / 10},
			freed:   []time.Duration{2 * ms, 2 * ms, 2 * ms, 2*ms + ms/10, 4 * ms},
			limit:   time.Second,
			want:    []time.Duration{2 * ms, 2*ms - ms/10, 2*ms - 2*ms/10, 2*ms + ms/10 - 3*ms/10}},
		{name: "the oldest goes first, in whatever order the jobs are given", added: []time.Duration{3 * ms, 1 * ms}, durable: []time.Duration{3 * ms, 1 * ms},
			freed: []time.Duration{4 * ms, 6 * ms}, limit: time.Second, want: []time.Duration{3 * ms, 3 * ms}},
		{name: "an older job not yet stored lets a younger one have the slot", added: []time.Duration{1 * ms, 2 * ms}, durable: []time.Duration{5 * ms, 2 * ms},
			freed: []time.Duration{3 * ms, 6 * ms}, limit: time.Second, want: []time.Duration{5 * ms, 1 * ms}},
		{name: "no slot left: the limit", added: []time.Duration{0, 1 * ms}, durable: []time.Duration{0, 1 * ms},
			freed: []time.Duration{2 * ms}, limit: 10 * ms, want: []time.Duration{2 * ms, 10 * ms}},
		{name: "a slot past the limit: the limit", added: []time.Duration{0}, durable: []time.Duration{0},
			freed: []time.Duration{20 * ms}, limit: 10 * ms, want: []time.Duration{10 * ms}},
		{name: "no job", freed: []time.Duration{ms}, limit: ms, want: []time.Duration{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := idealWaits(tc.added, tc.durable, tc.freed, tc.limit)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("idealWaits(added %v, durable %v, freed %v) = %v, want %v", tc.added, tc.durable, tc.freed, got, tc.want)
			}
		})
	}
}

// TestCheckFlood: each flood flag out of range is named with its value;
// the defaults pass.
func TestCheckFlood(t *testing.T) {
	for _, tc := range []struct {
		spread time.Duration
		conc   int
		want   string // "" for no error
	}{
		{0, defaultFloodConc, ""},
		{500 * time.Microsecond, 1, ""},
		{0, maxFloodConc, ""},
		{0, 0, "-flood-concurrency: 0 is not in [1, 1000]"},
		{0, -3, "-flood-concurrency: -3 is not in [1, 1000]"},
		{0, maxFloodConc + 1, "-flood-concurrency: 1001 is not in [1, 1000]"},
		{floodJob, defaultFloodConc, "-flood-spread: 2ms is not in [0, 2ms)"},
		{-time.Microsecond, defaultFloodConc, "-flood-spread: -1µs is not in [0, 2ms)"},
	} {
		cfg := &config{floodSpread: tc.spread, floodConc: tc.conc}
		err := cfg.checkFlood()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("spread %v, concurrency %d: %v", tc.spread, tc.conc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("spread %v, concurrency %d: error %v, want %q", tc.spread, tc.conc, err, tc.want)
		}
	}
}

// TestFloodRows: the flood rows name the spread and the concurrency only
// when they are not the issue's.
func TestFloodRows(t *testing.T) {
	for _, tc := range []struct {
		spread time.Duration
		conc   int
		want   string
	}{
		{0, defaultFloodConc, "g flood"},
		{500 * time.Microsecond, defaultFloodConc, "g flood 2±500µs"},
		{0, 20, "g flood c20"},
		{500 * time.Microsecond, 20, "g flood 2±500µs c20"},
	} {
		if got := floodRows(&config{floodSpread: tc.spread, floodConc: tc.conc}); got != tc.want {
			t.Errorf("floodRows(spread %v, concurrency %d) = %q, want %q", tc.spread, tc.conc, got, tc.want)
		}
	}
}

// TestFairFlood runs a small flood on each engine: every B–E job that
// started has its wait split into add-to-lease and lease-to-start, which
// add up to it, and an ideal wait no longer than the window. The broker
// the Manager ran on, traced, keeps the optional interfaces the Manager
// looks for, so the flood measures the path users get.
func TestFairFlood(t *testing.T) {
	srv := testRedis(t)
	sq, cleanup, err := sqliteSystem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	for _, s := range []*aibos{newAibosRedis(srv), sq} {
		t.Run(s.label, func(t *testing.T) {
			b, closeB, err := s.open()
			if err != nil {
				t.Fatal(err)
			}
			defer closeB()
			tb, err := newFloodTrace(2, time.Second).traced(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := tb.(broker.ReadyWaiter); !ok {
				t.Errorf("the traced %T is no broker.ReadyWaiter", b)
			}
			if _, ok := tb.(broker.FairBroker); !ok {
				t.Errorf("the traced %T is no broker.FairBroker", b)
			}
			const window = 300 * time.Millisecond
			r, err := fairFlood(context.Background(), s, floodRun{fair: true, flood: 300, window: window, conc: 4})
			if err != nil {
				t.Fatal(err)
			}
			if r.started != 1 || len(r.toLease) != len(r.waits) || len(r.ideal) != len(r.waits) {
				t.Fatalf("%.2f of %d B-E jobs started, %d split, %d ideal waits", r.started, len(r.waits), len(r.toLease), len(r.ideal))
			}
			for i, w := range r.waits {
				if sum := r.toLease[i] + r.toStart[i]; w < ms(window) && math.Abs(sum-w) > 0.0015 {
					t.Errorf("job %d waited %.3f ms: %.3f to its lease and %.3f to its start add up to %.3f", i, w, r.toLease[i], r.toStart[i], sum)
				}
				if r.ideal[i] < 0 || r.ideal[i] > ms(window) {
					t.Errorf("job %d's ideal wait %.3f ms is not in [0, %v]", i, r.ideal[i], window)
				}
			}
		})
	}
}
