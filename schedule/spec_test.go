package schedule_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/schedule"
)

// TestNextFireTimes pins fire times, including DST transitions, leap days
// and the 31st of short months. Times are written in the spec's zone with
// their offset, so a reader sees the wall clock and the instant.
func TestNextFireTimes(t *testing.T) {
	cases := []struct {
		name, spec, tz, from string
		want                 []string
	}{
		{"daily 02:00 UTC", "0 2 * * *", "", "2025-01-01T00:00:00Z",
			[]string{"2025-01-01T02:00:00Z", "2025-01-02T02:00:00Z"}},
		{"monthly cleanup", "0 0 1 * *", "", "2025-01-15T00:00:00Z",
			[]string{"2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z"}},
		// Berlin springs forward on 2025-03-30 at 02:00 → 03:00: 02:30 does not
		// exist and fires once, shifted by the gap, at 03:30 CEST.
		{"Berlin spring forward 02:30", "30 2 * * *", "Europe/Berlin", "2025-03-29T12:00:00+01:00",
			[]string{"2025-03-30T03:30:00+02:00", "2025-03-31T02:30:00+02:00"}},
		// Berlin falls back on 2025-10-26 at 03:00 → 02:00: 02:30 happens twice
		// and fires once, at its first occurrence (CEST).
		{"Berlin fall back 02:30", "30 2 * * *", "Europe/Berlin", "2025-10-25T12:00:00+02:00",
			[]string{"2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"}},
		// New York springs forward on 2025-03-09 at 02:00 → 03:00.
		{"New York spring forward 02:30", "30 2 * * *", "America/New_York", "2025-03-08T12:00:00-05:00",
			[]string{"2025-03-09T03:30:00-04:00", "2025-03-10T02:30:00-04:00"}},
		// New York falls back on 2025-11-02 at 02:00 → 01:00: 01:30 fires once.
		{"New York fall back 01:30", "30 1 * * *", "America/New_York", "2025-11-01T12:00:00-04:00",
			[]string{"2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"}},
		// A spec firing every hour follows real time: both 01:30s fire.
		{"New York fall back hourly", "30 * * * *", "America/New_York", "2025-11-02T00:45:00-04:00",
			[]string{"2025-11-02T01:30:00-04:00", "2025-11-02T01:30:00-05:00", "2025-11-02T02:30:00-05:00"}},
		{"Feb 29 only in leap years", "0 0 29 2 *", "", "2025-01-01T00:00:00Z",
			[]string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"31st skips short months", "0 12 31 * *", "", "2025-01-31T13:00:00Z",
			[]string{"2025-03-31T12:00:00Z", "2025-05-31T12:00:00Z", "2025-07-31T12:00:00Z", "2025-08-31T12:00:00Z"}},
		{"30th skips February", "0 0 30 * *", "", "2025-01-30T01:00:00Z",
			[]string{"2025-03-30T00:00:00Z"}},
		{"seconds field", "*/20 * * * * *", "", "2025-01-01T00:00:05Z",
			[]string{"2025-01-01T00:00:20Z", "2025-01-01T00:00:40Z", "2025-01-01T00:01:00Z"}},
		{"@daily in Berlin is local midnight", "@daily", "Europe/Berlin", "2025-06-01T12:00:00+02:00",
			[]string{"2025-06-02T00:00:00+02:00"}},
		{"@hourly", "@hourly", "", "2025-06-01T12:00:01Z", []string{"2025-06-01T13:00:00Z"}},
		{"@every 15m aligns to the epoch", "@every 15m", "", "2025-01-01T00:07:00Z",
			[]string{"2025-01-01T00:15:00Z", "2025-01-01T00:30:00Z"}},
		{"@every 1s", "@every 1s", "", "2025-01-01T00:00:00.5Z",
			[]string{"2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z"}},
		{"dom or dow (Vixie)", "0 0 13 * 5", "", "2025-06-01T00:00:00Z",
			[]string{"2025-06-06T00:00:00Z", "2025-06-13T00:00:00Z", "2025-06-20T00:00:00Z"}},
		{"names", "0 9 * jan-feb mon", "", "2025-01-01T00:00:00Z",
			[]string{"2025-01-06T09:00:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sp, err := schedule.Parse(c.spec, c.tz, schedule.ParseOptions{})
			if err != nil {
				t.Fatalf("Parse(%q, %q): %v", c.spec, c.tz, err)
			}
			from, err := time.Parse(time.RFC3339Nano, c.from)
			if err != nil {
				t.Fatal(err)
			}
			got := sp.NextN(from, len(c.want))
			if len(got) != len(c.want) {
				t.Fatalf("NextN gave %d times %v, want %v", len(got), got, c.want)
			}
			for i, w := range c.want {
				wt, _ := time.Parse(time.RFC3339, w)
				_, off := got[i].Zone()
				_, woff := wt.Zone()
				if !got[i].Equal(wt) || off != woff {
					t.Errorf("fire %d: got %s, want %s", i, got[i].Format(time.RFC3339), w)
				}
			}
		})
	}
}

// TestParseErrors: a bad spec names the field and the value.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		spec, tz       string
		min            time.Duration
		field, value   string
		reasonContains string
	}{
		{"0 0 * *", "", 0, "spec", "0 0 * *", "4 fields"},
		{"0 0 * * * * *", "", 0, "spec", "0 0 * * * * *", "7 fields"},
		{"", "", 0, "spec", "", "empty"},
		{"60 * * * *", "", 0, "minute", "60", "0-59"},
		{"0 24 * * *", "", 0, "hour", "24", "0-23"},
		{"0 0 32 * *", "", 0, "day-of-month", "32", "1-31"},
		{"0 0 1 13 *", "", 0, "month", "13", "1-12"},
		{"0 0 * * 8", "", 0, "day-of-week", "8", "0-7"},
		{"61 0 0 * * *", "", 0, "second", "61", "0-59"},
		{"0 0 30 2 *", "", 0, "day-of-month", "30", "never occurs"},
		{"0 0 31 4,6 *", "", 0, "day-of-month", "31", "never occurs"},
		{"0 2 * * *", "Mars/Olympus", 0, "time zone", "Mars/Olympus", "unknown"},
		{"@every 10s", "", time.Minute, "interval", "10s", "below the minimum interval 1m0s"},
		{"* * * * *", "", 5 * time.Minute, "interval", "1m0s", "below the minimum interval 5m0s"},
		{"@every 1500ms", "", 0, "@every", "1500ms", "whole number of seconds"},
		{"@every soon", "", 0, "@every", "soon", "not a duration"},
		{"@every -5m", "", 0, "@every", "-5m", "positive"},
		{"@fortnightly", "", 0, "descriptor", "@fortnightly", "unknown"},
		{"CRON_TZ=Europe/Berlin 0 2 * * *", "", 0, "spec", "CRON_TZ=Europe/Berlin", "time zone separately"},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			_, err := schedule.Parse(c.spec, c.tz, schedule.ParseOptions{MinInterval: c.min})
			var se *schedule.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q, %q) = %v; want a *SpecError", c.spec, c.tz, err)
			}
			if se.Field != c.field || se.Value != c.value || !strings.Contains(se.Reason, c.reasonContains) {
				t.Fatalf("Parse(%q): field %q value %q reason %q; want field %q value %q reason containing %q",
					c.spec, se.Field, se.Value, se.Reason, c.field, c.value, c.reasonContains)
			}
			if !strings.Contains(err.Error(), c.field) || !strings.Contains(err.Error(), c.value) {
				t.Fatalf("message %q does not name the field and value", err)
			}
		})
	}
}

// FuzzParse: Parse and Next never panic, and fire times only move forward.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0 2 * * *", "*/5 * * * * *", "@every 15m", "@daily", "0 0 30 2 *", "1-5/2,7 * L * MON#2",
		"@every 0s", "60 * * * *", "0 0 29 2 *", "TZ=X 0 * * * *", "@every 9223372036s", "* * * * 7-0", "0 0 31 4 *"} {
		for _, tz := range []string{"", "Europe/Berlin", "America/New_York", "../etc/passwd", "Nowhere"} {
			f.Add(s, tz, int64(1743292800))
		}
	}
	f.Fuzz(func(t *testing.T, spec, tz string, from int64) {
		sp, err := schedule.Parse(spec, tz, schedule.ParseOptions{})
		if err != nil {
			var se *schedule.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q, %q) error %T is not a *SpecError", spec, tz, err)
			}
			return
		}
		start := time.Unix(from%(1<<34), 0)
		prev := start
		for _, n := range sp.NextN(start, 3) {
			if !n.After(prev) {
				t.Fatalf("Parse(%q, %q): fire time %v is not after %v", spec, tz, n, prev)
			}
			prev = n
		}
	})
}
