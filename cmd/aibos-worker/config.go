package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/aibos/worker/service"
)

// printConfig writes the effective configuration: every setting with its
// value and source, then the file's sections. Passwords in URLs and
// endpoint secrets are never printed.
func printConfig(w io.Writer, c *service.Config) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE\tFLAG")
	for _, v := range c.Values() {
		val := v.Value
		if val == "" {
			val = "(unset)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t--%s\n", v.Env, val, v.Source, v.Flag)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	file := c.File
	if file == "" {
		file = "(none: built-in queues and recovery, no job types or schedules)"
	}
	fmt.Fprintf(w, "\nconfig file: %s\n", file)
	fmt.Fprintln(w, "queues:")
	for _, q := range c.Queues {
		fmt.Fprintf(w, "  %s priority %d concurrency %d\n", q.Name, q.Priority, q.Concurrency)
	}
	fmt.Fprintln(w, "job types:")
	for _, t := range c.JobTypeNames() {
		jt := c.JobTypes[t]
		if jt.HTTP == nil {
			fmt.Fprintf(w, "  %s Go processor %q\n", t, jt.Processor)
			continue
		}
		e := jt.HTTP
		fmt.Fprintf(w, "  %s http %s", t, service.RedactURL(e.URL))
		if len(e.Instances) > 0 {
			fmt.Fprintf(w, " instances %s", strings.Join(e.Instances, ","))
		}
		fmt.Fprintf(w, " secret %s timeout %v\n", secretState(e.Secret), e.Timeout)
	}
	fmt.Fprintln(w, "schedules:")
	for _, s := range c.Schedules {
		tz := s.TimeZone
		if tz == "" {
			tz = "UTC"
		}
		fmt.Fprintf(w, "  %s %q %s -> %s %s\n", s.Name, s.Cron, tz, s.Job.Queue, s.Job.Type)
	}
	if c.Callbacks != nil {
		fmt.Fprintf(w, "callbacks: %s secret %s\n", service.RedactURL(c.Callbacks.URL), secretState(c.Callbacks.Secret))
	}
	if sc := c.Scaling; sc != nil && sc.Enabled {
		fmt.Fprintf(w, "scaling: on, %d to %d workers (0: the seed's 1 and 10)\n", sc.MinWorkers, sc.MaxWorkers)
	} else {
		fmt.Fprintln(w, "scaling: off")
	}
	fmt.Fprintln(w, "recovery:")
	for _, r := range c.Recovery {
		fmt.Fprintf(w, "  %s %s max_attempts %d delay %v notify %t\n", r.ErrorType, r.Action, r.MaxAttempts, r.Delay, r.Notify)
	}
	return nil
}

func secretState(s string) string {
	if s == "" {
		return "(none)"
	}
	return "(set, redacted)"
}
