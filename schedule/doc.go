// Package schedule runs jobs on a schedule: Cron for recurring schedules
// (the seed's CronScheduler) and OneTime for a job at a given time (the
// seed's OneTimeScheduler).
//
// # Cron
//
// A schedule is a name, a cron spec (five fields, an optional leading
// seconds field, or a descriptor such as @daily or @every 15m; see Spec
// syntax below), an IANA time zone and a job template. Schedules are stored in the broker
// as documents of the broker's generic atomic primitive (broker.Committer,
// implemented by both brokers), so a restarted scheduler carries on, and any
// number of schedulers may call Run on one broker, in one process or many:
// each tick is claimed by one commit that compares-and-sets the schedule's
// last tick and inserts the tick's job (one Lua script on Redis, one
// transaction on SQLite), so exactly one job is enqueued per tick. The claim is
// refused before the tick is due by the broker's clock (Redis TIME), so a
// scheduler whose clock runs ahead cannot fire early. The tick's job has the
// deterministic id "cron:<name>:<unix seconds>" (TickJobID), RunAt = the
// tick, and the headers "schedule" and "schedule-tick".
//
// Missed ticks (no scheduler running when they fell) follow the schedule's
// CatchUp policy: CatchUpOnce (default) enqueues one job for the newest
// missed tick within CatchUpWindow (default 24h), with header
// "schedule-missed" counting the ticks it stands for; CatchUpSkip drops them.
// Either way there is never a burst. A tick up to Config.Grace (10s) late
// is not missed: it runs.
//
// Changing a schedule's spec, zone or queue takes effect from the change:
// ticks before it never run. Pausing skips ticks until Resume.
//
// # Spec syntax
//
// A spec is five fields, minute hour day-of-month month day-of-week, or six
// with a leading second; or a descriptor. Fields are separated by spaces;
// names and letters are case-insensitive. Accepted, field by field:
//
//	second        0-59
//	minute        0-59
//	hour          0-23
//	day-of-month  1-31, and L, L-n, LW, nW, ?
//	month         1-12 or JAN-DEC
//	day-of-week   0-7 or SUN-SAT (0 and 7 are Sunday), and dL, d#L, d#n, ?
//
// In every field:
//
//	form      meaning                               example
//	*         every value                           "* * * * *" every minute
//	n         one value                             "0 9 * * *" at 09:00
//	a-b       a range                               "0 9-17 * * *" hourly 09:00-17:00
//	*/s       every s-th value from the lowest      "*/15 * * * *" at :00, :15, :30, :45
//	a-b/s     every s-th value of a range           "0 8-18/2 * * *" at 08:00, 10:00 ... 18:00
//	n/s       every s-th value from n to the top    "5/20 * * * *" at :05, :25, :45
//	x,y       a list of any of the above            "0 9 1,15 * *" on the 1st and the 15th
//
// Only in day-of-month:
//
//	form      meaning                               example
//	L         the last day of the month             "0 23 L * *" 23:00 on the 28th-31st
//	L-n       n days before the last (n 1-30)       "0 0 L-2 * *" 29 January, 26 February 2027
//	LW        the last weekday (Monday-Friday)      "0 9 LW * *" close the books
//	nW        the weekday nearest day n (n 1-31),   "0 9 15W * *" Monday 16 August 2027 for the
//	          never in another month                Sunday 15th; 1W on a Saturday is Monday the
//	                                                3rd, 31W on a Sunday is Friday the 29th;
//	                                                months without day n are skipped
//	?         same as *                             "0 12 ? * MON"
//
// Only in day-of-week, with d a day number or name:
//
//	form      meaning                               example
//	dL        the last d of the month (Quartz)      "0 9 * * 5L" the last Friday
//	d#L       the same (croner)                     "0 9 * * FRI#L"
//	d#n       the n-th d of the month (n 1-5)       "0 9 * * 1#2" the second Monday
//	?         same as *
//
// Day numbers are cron's (0 or 7 Sunday, 1 Monday ... 5 Friday, 6 Saturday),
// not Quartz's (1 Sunday), so Quartz's "6L" is written 5L here. When both
// day-of-month and day-of-week are restricted, a day matching either fires
// ("0 0 1 * MON": the 1st and every Monday), as in Vixie cron.
//
// Ranges wrap around only in month and day-of-week: "FRI-MON" is Friday to
// Monday, "NOV-FEB" November to February. In second, minute, hour and
// day-of-month a range must not run backwards ("5-1", "22-2" are errors; write
// "22-23,0-2").
//
// Descriptors: @yearly (@annually), @monthly, @weekly, @daily (@midnight),
// @hourly, and @every <duration>, which ticks at the multiples of the
// duration since the Unix epoch, whatever the zone, so every scheduler
// instance computes the same ticks; the duration is a whole number of
// seconds. Use @daily, not @every 24h, for local midnight.
//
// Parse rejects, with a *SpecError naming the field and the value: empty
// list items ("1,,2", "1,"), ranges running backwards outside month and
// day-of-week, "*" starting a range ("*-5"), "?" outside the day fields or
// with a step, signs ("+5"), names other than the three-letter ones, L, W
// and # outside their forms above, values outside a field's range, a step
// of 0 or not below the range's size, a day of the month that no selected
// month has ("0 0 30 2 *", "0 0 L-29 2 *"), specs that never fire, specs
// firing more often than ParseOptions.MinInterval, and unknown time zones.
//
// # Time zones and DST
//
// A spec is read in its IANA time zone: it names local wall-clock times.
// When the zone's UTC offset changes (summer time, or a change of standard
// time, by any amount: Lord Howe Island shifts 30 minutes), one rule holds:
//
//   - A fixed local time that a spring-forward gap skips fires once, at the
//     first instant after the gap, as in Vixie cron and cronie: on the night
//     Berlin jumps from 02:00 to 03:00, "30 2 * * *" fires at 03:00 CEST; on
//     Lord Howe Island, jumping from 02:00 to 02:30, "15 2 * * *" fires at
//     02:30. That instant may be on the next day: America/Scoresbysund
//     springs from 23:00 to 00:00, so its "30 23 * * *" fires at 00:00.
//     Times of one spec that the gap maps to the same instant fire once.
//   - A fixed local time that a fall-back overlap shows twice fires once, at
//     its first occurrence: "30 1 * * *" fires at 01:30 EDT on the night New
//     York falls back from 02:00 to 01:00, not again at 01:30 EST.
//   - A spec whose hour field is a wildcard or a step ("*", "*/2", "1-23/2",
//     @hourly) or names all 24 hours follows the clock: it fires at every
//     instant whose local time matches. In the overlap "30 * * * *" fires
//     at 01:30 EDT and at 01:30 EST; in the gap, times that do not happen do
//     not fire (Berlin's "30 * * * *" fires at 01:30 CET, then 03:30 CEST).
//
// So a daily spec fires exactly once for every local day, in every zone.
// Ticks are instants: the job of a tick has the instant's id, and a
// catch-up counts instants.
//
// # OneTime
//
// OneTime.Schedule enqueues a job with the id "once:<name>" due at a time;
// calling it again with the same name returns the existing job. Reschedule
// moves it atomically (one commit of broker.Committer), Cancel cancels
// it, List lists those not yet started. No scheduler loop is needed: the
// worker promotes the job when it is due.
//
// # Cron library
//
// Specs are parsed by github.com/netresearch/go-cron, a maintained fork of
// robfig/cron (unmaintained, with reported time-zone panics), with its
// extended syntax on (L, W, #), behind Parse, which adds what the library
// lacks: strict checks of each field (the library drops empty list items
// and wraps descending ranges in every field), Quartz's "5L", upper-case
// THU (the library reads a capital H as its hash syntax), errors naming the
// field and value, rejection of specs that can never fire, a minimum
// interval and epoch-aligned @every ticks (the library counts from the
// previous run, which differs between instances). Next uses the library
// only to match wall-clock readings and applies the DST rule above itself:
// the library's own DST handling assumes whole-hour shifts and fires a
// repeated time twice.
package schedule
