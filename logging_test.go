package worker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/logtest"
	"github.com/aibos/worker/recovery"
)

// TestLogsCarryJobAttributesNeverPayloads processes jobs whose data holds
// a secret (one completes, one retries until dead, one fails with a
// notifying strategy) with every log level on, and checks that the secret
// never reaches the log and every line about a job names it fully.
func TestLogsCarryJobAttributesNeverPayloads(t *testing.T) {
	t.Parallel()
	const secret = "4111-1111-1111-1111-SECRET"
	out := &logtest.Buffer{}
	logger := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := redisBroker(t)
	cfg := fastConfig()
	cfg.Logger = logger
	cfg.Recovery = &recovery.Policy{
		Strategies: []recovery.Strategy{{ErrorType: recovery.BusinessLogicError, Action: recovery.Fail, Notify: true}},
		Notifier:   recovery.SlogNotifier{Logger: logger},
	}
	m := newManager(t, b, cfg)
	_ = m.HandleFunc("pay", func(ctx context.Context, j *worker.Job) error {
		var in struct{ Card, Mode string }
		if err := worker.Decode(j, &in); err != nil {
			return err
		}
		switch in.Mode {
		case "fail":
			return errors.New("card declined")
		case "business":
			return recovery.Classify(recovery.BusinessLogicError, errors.New("amount over limit"))
		}
		return nil
	})
	startManager(t, m)
	c := newClient(t, b)
	ok := add(t, c, "default", worker.JobSpec{Type: "pay", TenantID: "t-7", Data: map[string]string{"Card": secret}})
	fail := add(t, c, "default", worker.JobSpec{Type: "pay", TenantID: "t-7", MaxAttempts: 2, Data: map[string]string{"Card": secret, "Mode": "fail"}})
	biz := add(t, c, "default", worker.JobSpec{Type: "pay", TenantID: "t-7", Data: map[string]string{"Card": secret, "Mode": "business"}})
	waitState(t, c, "default", ok.ID, worker.StateCompleted)
	waitState(t, c, "default", fail.ID, worker.StateDead)
	waitState(t, c, "default", biz.ID, worker.StateDead)
	waitFor(t, 10*time.Second, "the failure notification to be logged", func() bool {
		return strings.Contains(out.String(), "job failure notification")
	})
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	logs := out.String()
	if strings.Contains(logs, secret) || strings.Contains(logs, "4111-1111") {
		t.Fatalf("the payload's secret reached the log:\n%s", logs)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		id, ok := rec["job_id"].(string)
		if !ok {
			continue
		}
		seen[id] = true
		for _, k := range []string{"queue", "type", "attempt", "tenant_id"} {
			if _, has := rec[k]; !has {
				t.Errorf("log line about job %s lacks %q: %s", id, k, sc.Text())
			}
		}
		if rec["tenant_id"] != "t-7" {
			t.Errorf("log line about job %s has tenant_id %v, want t-7", id, rec["tenant_id"])
		}
	}
	for _, id := range []string{ok.ID, fail.ID, biz.ID} {
		if !seen[id] {
			t.Errorf("no log line names job %s:\n%s", id, logs)
		}
	}
}
