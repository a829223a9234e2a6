package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin/adminclient"
)

// scheduleView is what the tables show of a schedule of the API (GET
// /api/v1/schedules); -o json prints the API's answer whole.
type scheduleView struct {
	Name     string `json:"name"`
	Cron     string `json:"cron"`
	TimeZone string `json:"timeZone"`
	Job      struct {
		Queue    string `json:"queue"`
		Type     string `json:"type"`
		TenantID string `json:"tenantId"`
	} `json:"job"`
	Paused    bool   `json:"paused"`
	ManagedBy string `json:"managedBy"`
	Next      []struct {
		Local string `json:"local"`
		UTC   string `json:"utc"`
	} `json:"next"`
}

// nextLocal is the schedule's next fire time in its zone, or "-".
func (s *scheduleView) nextLocal() string {
	if len(s.Next) == 0 {
		return "-"
	}
	return s.Next[0].Local
}

// newCronCmd builds `aibos-worker cron ls|next|trigger|pause|resume`.
func newCronCmd(o *apiOpts) *cobra.Command {
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the cron schedules with their next fire time",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, _ []string) error {
			l, raw, err := callView[struct {
				Schedules []*scheduleView `json:"schedules"`
			}](ctx, c, "GET", "/api/v1/schedules?next=1", nil)
			if err != nil {
				return apiError("list schedules", err)
			}
			return o.show(raw, func(w *tabwriter.Writer) {
				row(w, "NAME", "CRON", "TIME ZONE", "QUEUE", "TYPE", "TENANT", "PAUSED", "NEXT", "MANAGED BY")
				for _, s := range l.Schedules {
					row(w, s.Name, s.Cron, s.TimeZone, s.Job.Queue, s.Job.Type, orDash(s.Job.TenantID, "-"), s.Paused, s.nextLocal(), s.ManagedBy)
				}
			})
		}),
	}
	var count int
	next := &cobra.Command{
		Use:   "next NAME",
		Short: "Show a schedule's coming fire times, in its time zone and in UTC",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
			s, raw, err := scheduleCall(ctx, c, "GET", args[0], "?next="+strconv.Itoa(count))
			if err != nil {
				return apiError("get schedule "+args[0], err)
			}
			return o.show(raw, func(w *tabwriter.Writer) {
				row(w, "LOCAL", "UTC")
				for _, t := range s.Next {
					row(w, t.Local, t.UTC)
				}
			})
		}),
	}
	next.Flags().IntVar(&count, "count", 5, "how many fire times, 0..100")
	act := func(verb, short, pastTense string) *cobra.Command {
		return &cobra.Command{
			Use:   verb + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
				if verb == "trigger" {
					j, raw, err := callView[struct{ ID, Queue, Type, State string }](ctx, c, "POST", "/api/v1/schedules/"+url.PathEscape(args[0])+"/trigger", nil)
					if err != nil {
						return apiError("trigger schedule "+args[0], err)
					}
					return o.show(raw, func(w *tabwriter.Writer) {
						fmt.Fprintf(w, "schedule %s triggered: job %s in queue %s (%s, %s)\n", args[0], j.ID, j.Queue, j.Type, j.State)
					})
				}
				s, raw, err := scheduleCall(ctx, c, "POST", args[0], "/"+verb)
				if err != nil {
					return apiError(verb+" schedule "+args[0], err)
				}
				return o.show(raw, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "schedule %s %s; next %s\n", s.Name, pastTense, s.nextLocal())
				})
			}),
		}
	}
	return o.group("cron", "List cron schedules and their next fire times; trigger, pause and resume them (over the API)",
		ls, next,
		act("trigger", "Enqueue the schedule's job now, outside its timetable", "triggered"),
		act("pause", "Stop the schedule enqueueing jobs", "paused"),
		act("resume", "Let the schedule enqueue jobs again", "resumed"))
}

// scheduleCall sends method to the schedule name's route with suffix and
// returns the schedule it answers with, decoded and raw.
func scheduleCall(ctx context.Context, c *adminclient.Client, method, name, suffix string) (*scheduleView, json.RawMessage, error) {
	return callView[scheduleView](ctx, c, method, "/api/v1/schedules/"+url.PathEscape(name)+suffix, nil)
}
