package worker_test

import (
	"context"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/ctxdeadline"
	"github.com/aibos/worker/internal/testbroker"
)

// deadlineProbe wraps a real broker and records the deadline each JobInsert
// was called with; inProcessProbe also claims broker.InProcess.
type deadlineProbe struct {
	broker.Broker
	got chan time.Duration // remaining time at the call; -1: none
}

func (p *deadlineProbe) JobInsert(ctx context.Context, ip *broker.JobInsertParams) (*broker.Job, error) {
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	p.got <- left
	return p.Broker.JobInsert(ctx, ip)
}

type inProcessProbe struct{ *deadlineProbe }

func (inProcessProbe) InProcess() bool { return true }

// The Client's default Timeout bounds calls to a networked broker and is
// skipped for one that serves calls in this process (the embedded store),
// where a deadline only costs; an explicit Timeout applies to both.
func TestClientDefaultTimeoutOnlyForNetworkedBrokers(t *testing.T) {
	if _, ok := testbroker.SQLite(t).(broker.InProcess); !ok {
		t.Fatal("the embedded SQLite broker does not implement broker.InProcess")
	}
	for _, tc := range []struct {
		name      string
		inProcess bool
		timeout   time.Duration
		want      time.Duration // -1: no deadline
	}{
		{"networked/default", false, 0, worker.DefaultClientTimeout},
		{"in-process/default", true, 0, -1},
		{"in-process/explicit", true, 2 * time.Second, 2 * time.Second},
		{"networked/none", false, -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probe := &deadlineProbe{Broker: testbroker.SQLite(t), got: make(chan time.Duration, 1)}
			var b broker.Broker = probe
			if tc.inProcess {
				b = inProcessProbe{probe}
			}
			c, err := worker.NewClient(b, worker.ClientConfig{Timeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Add(context.Background(), "q", worker.JobSpec{Type: "t"}); err != nil {
				t.Fatal(err)
			}
			left := <-probe.got
			switch {
			case tc.want < 0 && left >= 0:
				t.Errorf("call had a deadline %v away; want none", left)
			// A call under context.Background shares a deadline up to
			// ctxdeadline.Slack later than its own.
			case tc.want >= 0 && (left < 0 || left > tc.want+ctxdeadline.Slack || left < tc.want-time.Second):
				t.Errorf("call's deadline was %v away; want about %v", left, tc.want)
			}
		})
	}
}
