package retry

import (
	"testing"
	"time"
)

func TestDelayBounds(t *testing.T) {
	tests := []struct {
		name     string
		p        Policy
		n        int
		min, max time.Duration
	}{
		{"first retry is base", Policy{BaseDelay: time.Second, Multiplier: 2, MaxDelay: time.Hour}, 1, time.Second, time.Second},
		{"doubles", Policy{BaseDelay: time.Second, Multiplier: 2, MaxDelay: time.Hour}, 3, 4 * time.Second, 4 * time.Second},
		{"capped", Policy{BaseDelay: time.Second, Multiplier: 2, MaxDelay: 10 * time.Second}, 10, 10 * time.Second, 10 * time.Second},
		{"huge n capped", Policy{BaseDelay: time.Second, Multiplier: 10, MaxDelay: time.Minute}, 10000, time.Minute, time.Minute},
		{"jitter within half", Policy{BaseDelay: time.Second, Multiplier: 2, MaxDelay: time.Hour, Jitter: true}, 2, time.Second, 2 * time.Second},
		{"jitter capped", Policy{BaseDelay: time.Second, Multiplier: 2, MaxDelay: 5 * time.Second, Jitter: true}, 20, 2500 * time.Millisecond, 5 * time.Second},
		{"defaults", Policy{}, 1, time.Second, time.Second},
		{"n below one is first", Policy{BaseDelay: time.Second}, 0, time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 {
				d := tt.p.Delay(tt.n)
				if d < tt.min || d > tt.max {
					t.Fatalf("Delay(%d) = %v, want in [%v, %v]", tt.n, d, tt.min, tt.max)
				}
			}
		})
	}
}

func TestJitterSpreads(t *testing.T) {
	p := Policy{BaseDelay: time.Second, Multiplier: 2, MaxDelay: time.Hour, Jitter: true}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[p.Delay(3)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("jitter produced only %d distinct delays out of 50", len(seen))
	}
}

func TestValidate(t *testing.T) {
	bad := []Policy{
		{MaxAttempts: -1},
		{BaseDelay: -time.Second},
		{Multiplier: 0.5},
		{BaseDelay: time.Minute, MaxDelay: time.Second},
	}
	for _, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", p)
		}
	}
	if err := DefaultPolicy().Validate(); err != nil {
		t.Errorf("default policy invalid: %v", err)
	}
}
