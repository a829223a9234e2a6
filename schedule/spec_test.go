package schedule_test

import (
	"errors"
	"slices"
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
		// exist and fires once, at the first instant after the gap, 03:00 CEST.
		{"Berlin spring forward 02:30", "30 2 * * *", "Europe/Berlin", "2025-03-29T12:00:00+01:00",
			[]string{"2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"}},
		// Every minute the gap skips maps to 03:00: one fire, not three.
		{"Berlin spring forward */20 2", "*/20 2 * * *", "Europe/Berlin", "2025-03-29T12:00:00+01:00",
			[]string{"2025-03-30T03:00:00+02:00", "2025-03-31T02:00:00+02:00"}},
		// A wildcard hour follows the clock: 02:30 does not happen, 03:30 does.
		{"Berlin spring forward hourly", "30 * * * *", "Europe/Berlin", "2025-03-30T00:45:00+01:00",
			[]string{"2025-03-30T01:30:00+01:00", "2025-03-30T03:30:00+02:00"}},
		// Berlin falls back on 2025-10-26 at 03:00 → 02:00: 02:30 happens twice
		// and fires once, at its first occurrence (CEST).
		{"Berlin fall back 02:30", "30 2 * * *", "Europe/Berlin", "2025-10-25T12:00:00+02:00",
			[]string{"2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"}},
		// New York springs forward on 2025-03-09 at 02:00 → 03:00.
		{"New York spring forward 02:30", "30 2 * * *", "America/New_York", "2025-03-08T12:00:00-05:00",
			[]string{"2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"}},
		{"New York spring forward 03:00", "0 3 * * *", "America/New_York", "2025-03-08T12:00:00-05:00",
			[]string{"2025-03-09T03:00:00-04:00", "2025-03-10T03:00:00-04:00"}},
		// New York falls back on 2025-11-02 at 02:00 → 01:00: 01:30 fires once.
		{"New York fall back 01:30", "30 1 * * *", "America/New_York", "2025-11-01T12:00:00-04:00",
			[]string{"2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"}},
		// Asked from the repeated hour, after 01:30 EDT fired: not again.
		{"New York fall back 01:30 from inside", "30 1 * * *", "America/New_York", "2025-11-02T01:10:00-05:00",
			[]string{"2025-11-03T01:30:00-05:00"}},
		// A spec firing every hour follows real time: both 01:30s fire.
		{"New York fall back hourly", "30 * * * *", "America/New_York", "2025-11-02T00:45:00-04:00",
			[]string{"2025-11-02T01:30:00-04:00", "2025-11-02T01:30:00-05:00", "2025-11-02T02:30:00-05:00"}},
		// A stepped hour follows the clock too: 01:00 fires in EDT and in EST.
		{"New York fall back stepped hour", "0 1-23/2 * * *", "America/New_York", "2025-11-02T00:30:00-04:00",
			[]string{"2025-11-02T01:00:00-04:00", "2025-11-02T01:00:00-05:00", "2025-11-02T03:00:00-05:00"}},
		// Lord Howe Island shifts by 30 minutes. It springs forward on
		// 2026-10-04 at 02:00 → 02:30: 02:15 fires once, at 02:30 (+11:00).
		{"Lord Howe spring forward 02:15", "15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30",
			[]string{"2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"}},
		{"Lord Howe spring forward 02:30", "30 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30",
			[]string{"2026-10-04T02:30:00+11:00", "2026-10-05T02:30:00+11:00"}},
		// It falls back on 2026-04-05 at 02:00 → 01:30: 01:45 happens twice
		// and fires once, at its first occurrence (+11:00).
		{"Lord Howe fall back 01:45", "45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00+11:00",
			[]string{"2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"}},
		// Hourly follows the clock: both 01:45s fire, and on the spring-forward
		// night 02:00 never shows, so the hour after 01:00 fires at 03:00.
		{"Lord Howe fall back hourly", "45 * * * *", "Australia/Lord_Howe", "2026-04-05T00:50:00+11:00",
			[]string{"2026-04-05T01:45:00+11:00", "2026-04-05T01:45:00+10:30", "2026-04-05T02:45:00+10:30"}},
		{"Lord Howe spring forward hourly", "0 * * * *", "Australia/Lord_Howe", "2026-10-04T00:30:00+10:30",
			[]string{"2026-10-04T01:00:00+10:30", "2026-10-04T03:00:00+11:00"}},
		// On 2040-12-31, the last day of a leap year past the zone file's own
		// transitions, Go's ZoneBounds gives an end before the instant
		// (golang/go#81583); Next must still move on.
		{"Berlin last day of 2040, daily", "30 2 * * *", "Europe/Berlin", "2040-12-30T12:00:00+01:00",
			[]string{"2040-12-31T02:30:00+01:00", "2041-01-01T02:30:00+01:00"}},
		{"Berlin last day of 2040, last weekday", "0 9 LW * *", "Europe/Berlin", "2040-11-30T09:00:00+01:00",
			[]string{"2040-12-31T09:00:00+01:00", "2041-01-31T09:00:00+01:00"}},
		{"Berlin last day of 2040, hourly", "0 * * * *", "Europe/Berlin", "2040-12-31T22:30:00+01:00",
			[]string{"2040-12-31T23:00:00+01:00", "2041-01-01T00:00:00+01:00", "2041-01-01T01:00:00+01:00"}},
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
		{"upper-case names", "0 9 * JAN THU", "", "2025-01-01T00:00:00Z",
			[]string{"2025-01-02T09:00:00Z", "2025-01-09T09:00:00Z"}},
		// Ranges wrap around in day-of-week and month only.
		{"day-of-week wraps", "0 9 * * FRI-MON", "", "2026-12-01T00:00:00Z", // a Tuesday
			[]string{"2026-12-04T09:00:00Z", "2026-12-05T09:00:00Z", "2026-12-06T09:00:00Z", "2026-12-07T09:00:00Z", "2026-12-11T09:00:00Z"}},
		{"month wraps", "0 0 1 NOV-FEB *", "", "2026-06-01T00:00:00Z",
			[]string{"2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z", "2027-11-01T00:00:00Z"}},
		{"step from a start", "5/20 * * * *", "", "2026-01-01T00:00:00Z",
			[]string{"2026-01-01T00:05:00Z", "2026-01-01T00:25:00Z", "2026-01-01T00:45:00Z", "2026-01-01T01:05:00Z"}},
		{"? in the day fields", "0 12 ? * ?", "", "2026-01-01T00:00:00Z",
			[]string{"2026-01-01T12:00:00Z"}},
		// nW never leaves the month: the 1st on a Saturday gives Monday the
		// 3rd, the 31st on a Sunday gives Friday the 29th.
		{"1W on a Saturday", "0 9 1W * *", "", "2026-07-31T00:00:00Z",
			[]string{"2026-08-03T09:00:00Z"}},
		{"31W on a Sunday", "0 9 31W * *", "", "2027-01-01T00:00:00Z",
			[]string{"2027-01-29T09:00:00Z", "2027-03-31T09:00:00Z"}},
		{"5th Monday", "0 9 * * MON#5", "", "2026-01-01T00:00:00Z",
			[]string{"2026-03-30T09:00:00Z", "2026-06-29T09:00:00Z"}},
		{"Monday 29 February", "0 0 * 2 1#5", "", "2026-01-01T00:00:00Z",
			[]string{"2044-02-29T00:00:00Z"}},
		{"list of month-end forms", "0 0 15,L * *", "", "2027-02-01T00:00:00Z",
			[]string{"2027-02-15T00:00:00Z", "2027-02-28T00:00:00Z", "2027-03-15T00:00:00Z"}},
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

// TestMonthEnd pins the month-end and weekday forms across a leap and a
// normal February, a 30-day and a 31-day month, in three zones. The wall
// times are the same in every zone; the offsets differ (New York and Berlin
// keep summer time in April and August).
func TestMonthEnd(t *testing.T) {
	months := []struct {
		name  string
		year  int
		month time.Month
	}{{"leap February", 2028, time.February}, {"February", 2027, time.February},
		{"30-day April", 2027, time.April}, {"31-day August", 2027, time.August}}
	// want[spec][i] is the fire day and hour in months[i]; 2028-02-01 is a
	// Tuesday, 2027-02-01 a Monday, 2027-04-01 a Thursday, 2027-08-01 a Sunday.
	want := []struct {
		spec string
		days [4]int
		hour int
	}{
		{"0 23 L * *", [4]int{29, 28, 30, 31}, 23},   // last day
		{"0 9 LW * *", [4]int{29, 26, 30, 31}, 9},    // last weekday: 2027-02-28 is a Sunday
		{"0 9 * * 1#2", [4]int{14, 8, 12, 9}, 9},     // second Monday
		{"0 9 * * 5L", [4]int{25, 26, 30, 27}, 9},    // last Friday (Quartz)
		{"0 9 * * FRI#L", [4]int{25, 26, 30, 27}, 9}, // last Friday (croner)
		{"0 0 L-2 * *", [4]int{27, 26, 28, 29}, 0},   // two days before the last
		{"0 9 15W * *", [4]int{15, 15, 15, 16}, 9},   // 2027-08-15 is a Sunday
	}
	for _, tz := range []string{"UTC", "Europe/Berlin", "America/New_York"} {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			sp, err := schedule.Parse(w.spec, tz, schedule.ParseOptions{})
			if err != nil {
				t.Fatalf("Parse(%q, %q): %v", w.spec, tz, err)
			}
			for i, m := range months {
				from := time.Date(m.year, m.month, 1, 0, 0, 0, 0, loc).Add(-time.Second)
				got := sp.NextN(from, 2)
				exp := time.Date(m.year, m.month, w.days[i], w.hour, 0, 0, 0, loc)
				if len(got) != 2 || !got[0].Equal(exp) || got[0].Location().String() != tz {
					t.Errorf("%s in %s, %s: fires %v; want %s", w.spec, tz, m.name, got, exp.Format(time.RFC3339))
					continue
				}
				if _, gm, _ := got[1].Date(); gm == m.month {
					t.Errorf("%s in %s, %s: fires again in the month at %s", w.spec, tz, m.name, got[1].Format(time.RFC3339))
				}
			}
		}
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
		// Strict parsing: what the library would read in a way nobody means.
		{"1,,2 * * * *", "", 0, "minute", "1,,2", "empty list item"},
		{"1, * * * *", "", 0, "minute", "1,", "empty list item"},
		{"0 0 ,1 * *", "", 0, "day-of-month", ",1", "empty list item"},
		{"0 9 * * MON,", "", 0, "day-of-week", "MON,", "empty list item"},
		{"5-1 * * * *", "", 0, "minute", "5-1", "runs backwards"},
		{"0 22-2 * * *", "", 0, "hour", "22-2", "runs backwards"},
		{"0 0 25-5 * *", "", 0, "day-of-month", "25-5", "runs backwards"},
		{"50-10/5 0 * * * *", "", 0, "second", "50-10/5", "runs backwards"},
		{"*-5 * * * *", "", 0, "minute", "*-5", "cannot start a range"},
		{"? * * * *", "", 0, "minute", "?", "only in day-of-month and day-of-week"},
		{"0 0 ?/2 * *", "", 0, "day-of-month", "?/2", "no step"},
		{"+5 * * * *", "", 0, "minute", "+5", "not a number"},
		{"0 H * * *", "", 0, "hour", "H", "not a number"},
		{"0 9 * * 1/x", "", 0, "day-of-week", "1/x", "step"},
		{"0 9 * L *", "", 0, "month", "L", "only in day-of-month"},
		{"0 9 * * L", "", 0, "day-of-week", "L", "names no weekday"},
		{"0 9 * * 1#6", "", 0, "day-of-week", "1#6", "not 1-5 or L"},
		{"0 9 * * 1#x", "", 0, "day-of-week", "1#x", "occurrence 1-5 or L"},
		{"0 9 * * 5W", "", 0, "day-of-week", "5W", "only in day-of-month"},
		{"0 9 * * FRIDAY", "", 0, "day-of-week", "FRIDAY", "three-letter name"},
		{"0 9 L/2 * *", "", 0, "day-of-month", "L/2", `after "L"`},
		{"0 9 L-x * *", "", 0, "day-of-month", "L-x", "L-3"},
		{"0 9 1-5W * *", "", 0, "day-of-month", "1-5W", "single day"},
		{"0 9 L-31 * *", "", 0, "day-of-month", "L-31", "1-30"},
		{"0 9 32W * *", "", 0, "day-of-month", "32W", "1-31"},
		{"0 0 L-29 2 *", "", 0, "day-of-month", "L-29", "never occurs"},
		{"0 0 31W 4 *", "", 0, "day-of-month", "31W", "never occurs"},
		{"*/0 * * * *", "", 0, "minute", "*/0", "step"},
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

// FuzzParse: Parse never panics and errors are *SpecError values naming a
// field; a parsed spec is accepted again as printed (String) with the same
// fire times, and its fire times move forward, in its zone, each one the
// next fire of the instant just before it.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0 2 * * *", "*/5 * * * * *", "@every 15m", "@daily", "0 0 30 2 *", "1-5/2,7 * L * MON#2",
		"@every 0s", "60 * * * *", "0 0 29 2 *", "TZ=X 0 * * * *", "@every 9223372036s", "* * * * 7-0", "0 0 31 4 *",
		"0 23 L * *", "0 9 LW * *", "0 9 * * 1#2", "0 9 * * 5L", "0 0 L-2 * *", "0 9 15W * *", "0 9 * * FRI#L",
		"30 2 * * *", "30 * * * *", "0 1-23/2 * * *", "1,,2 * * * *", "5-1 * * * *", "0 9 * * FRI-MON", "0 0 * 2 1#5"} {
		for _, tz := range []string{"", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "../etc/passwd", "Nowhere"} {
			f.Add(s, tz, int64(1743292800))
		}
	}
	fields := map[string]bool{"spec": true, "second": true, "minute": true, "hour": true, "day-of-month": true,
		"month": true, "day-of-week": true, "descriptor": true, "@every": true, "interval": true, "time zone": true}
	f.Fuzz(func(t *testing.T, spec, tz string, from int64) {
		sp, err := schedule.Parse(spec, tz, schedule.ParseOptions{})
		if err != nil {
			var se *schedule.SpecError
			if !errors.As(err, &se) || !fields[se.Field] || !strings.Contains(err.Error(), se.Field) {
				t.Fatalf("Parse(%q, %q) error %T %v does not name a field", spec, tz, err, err)
			}
			return
		}
		start := time.Unix(from%(1<<34), 0)
		fires := sp.NextN(start, 3)
		again, err := schedule.Parse(sp.String(), tz, schedule.ParseOptions{})
		if err != nil {
			t.Fatalf("Parse(%q, %q) accepted, but not as printed, %q: %v", spec, tz, sp.String(), err)
		}
		if a := again.NextN(start, 3); !slices.EqualFunc(a, fires, time.Time.Equal) {
			t.Fatalf("Parse(%q, %q) fires at %v, as printed at %v", spec, tz, fires, a)
		}
		prev := start
		for _, n := range fires {
			if !n.After(prev) || n.Location().String() != sp.Location().String() {
				t.Fatalf("Parse(%q, %q): fire time %v after %v is not later in the spec's zone", spec, tz, n, prev)
			}
			if m := sp.Next(n.Add(-time.Nanosecond)); !m.Equal(n) {
				t.Fatalf("Parse(%q, %q): Next of the instant before fire time %v is %v", spec, tz, n, m)
			}
			prev = n
		}
	})
}

// BenchmarkSpecNext measures one Next in a DST zone, in turn from each fire
// time over 2026-2028: fixed hours, a month-end form, a spec that follows
// the clock and one firing every second.
func BenchmarkSpecNext(b *testing.B) {
	for _, spec := range []string{"30 2 * * *", "0 9 LW * *", "*/15 * * * *", "* * * * * *"} {
		b.Run(spec, func(b *testing.B) {
			sp, err := schedule.Parse(spec, "Europe/Berlin", schedule.ParseOptions{})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			t := start
			for b.Loop() {
				if t = sp.Next(t); t.Year() > 2028 {
					t = start // stay in years of the zone file's own transitions
				}
			}
		})
	}
}
