// Package schedule runs jobs on a schedule: Cron for recurring schedules
// (the seed's CronScheduler) and OneTime for a job at a given time (the
// seed's OneTimeScheduler).
//
// # Cron
//
// A schedule is a name, a cron spec (see Spec: five fields, an optional
// leading seconds field, or a descriptor such as @daily or @every 15m), an
// IANA time zone and a job template. Schedules are stored in the broker
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
// robfig/cron (unmaintained, with reported time-zone panics), behind Parse,
// which adds what the library lacks: errors naming the field and value,
// rejection of specs that can never fire (Feb 30), a minimum interval,
// epoch-aligned @every ticks (the library counts from the previous run,
// which differs between instances) and one fire for a wall time repeated by
// a fall-back DST transition (the library fires twice).
package schedule
