package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
)

var _ broker.WorkflowStore = (*Broker)(nil)

// luaJob is a job template as the workflow scripts read it: the data is a
// JSON document carried as a string, so cjson never re-encodes it.
type luaJob struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Data        string `json:"data,omitempty"`
	Priority    int    `json:"priority,omitempty"`
	MaxAttempts int    `json:"max_attempts"`
	Timeout     int64  `json:"timeout,omitempty"`
}

type luaStep struct {
	Name string   `json:"name"`
	Deps []string `json:"deps,omitempty"`
	Job  luaJob   `json:"job"`
	Comp *luaJob  `json:"comp,omitempty"`
}

type luaDef struct {
	Steps []luaStep `json:"steps"`
	OK    *luaJob   `json:"ok,omitempty"`
	Fail  *luaJob   `json:"fail,omitempty"`
}

func toLua(j *broker.WorkflowJob) *luaJob {
	if j == nil {
		return nil
	}
	return &luaJob{ID: j.ID, Type: j.Type, Data: string(j.Data), Priority: j.Priority, MaxAttempts: j.MaxAttempts, Timeout: int64(j.Timeout)}
}

func fromLua(j *luaJob) *broker.WorkflowJob {
	if j == nil {
		return nil
	}
	w := &broker.WorkflowJob{ID: j.ID, Type: j.Type, Priority: j.Priority, MaxAttempts: j.MaxAttempts, Timeout: time.Duration(j.Timeout)}
	if j.Data != "" {
		w.Data = json.RawMessage(j.Data)
	}
	return w
}

// WorkflowRunCreate stores a run and inserts its root steps' jobs in one
// script call; see broker.WorkflowStore.
func (b *Broker) WorkflowRunCreate(ctx context.Context, p *broker.WorkflowRunCreateParams) (*broker.WorkflowRun, bool, error) {
	if err := b.open("create workflow run"); err != nil {
		return nil, false, err
	}
	if err := p.Validate(); err != nil {
		return nil, false, fmt.Errorf("redisbroker: create workflow run: %w", err)
	}
	def := luaDef{OK: toLua(p.OnSuccess), Fail: toLua(p.OnFailure)}
	for _, s := range p.Steps {
		def.Steps = append(def.Steps, luaStep{Name: s.Name, Deps: s.DependsOn, Job: *toLua(&s.Job), Comp: toLua(s.Compensation)})
	}
	defJSON, err := json.Marshal(def)
	if err != nil {
		return nil, false, fmt.Errorf("redisbroker: create workflow run %s: encode definition: %w", p.ID, err)
	}
	op := fmt.Sprintf("redisbroker: create run %s of workflow %q in %q", p.ID, p.Workflow, p.Queue)
	reply, err := scriptWorkflowCreate.Run(ctx, b.client, b.workflowKeys(p.Queue, p.ID, p.IdempotencyKey),
		p.ID, p.Workflow, p.TenantID, p.CompanyID, p.IdempotencyKey, string(p.Input), string(defJSON)).Result()
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", op, err)
	}
	arr, st, err := status(reply)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", op, err)
	}
	switch st {
	case "exists":
		run, err := b.WorkflowRunGet(ctx, p.Queue, str(arr, 1))
		return run, false, err
	case "dup":
		return nil, false, fmt.Errorf("%s: %w", op, &broker.DuplicateError{Queue: p.Queue, ExistingID: p.ID})
	case "dupjob":
		return nil, false, fmt.Errorf("%s: %w", op, &broker.DuplicateError{Queue: p.Queue, ExistingID: str(arr, 1)})
	case "ok":
	default:
		return nil, false, fmt.Errorf("%s: unexpected status %q", op, st)
	}
	_ = b.registerQueue(ctx, p.Queue)
	run, err := b.WorkflowRunGet(ctx, p.Queue, p.ID)
	return run, true, err
}

// WorkflowJobComplete completes a job of a run and advances the run in one
// script call; see broker.WorkflowStore.
func (b *Broker) WorkflowJobComplete(ctx context.Context, p *broker.WorkflowJobCompleteParams) error {
	if err := b.open("complete workflow job"); err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("redisbroker: complete workflow job: %w: params are nil", broker.ErrInvalidJob)
	}
	if len(p.Result) > 0 && !json.Valid(p.Result) {
		return fmt.Errorf("redisbroker: complete workflow job %s: %w: result is not valid JSON", p.ID, broker.ErrInvalidJob)
	}
	op := fmt.Sprintf("redisbroker: complete job %s of run %s in %q", p.ID, p.Run, p.Queue)
	if broker.ValidateQueueName(p.Queue) != nil || p.Run == "" {
		return fmt.Errorf("%s: %w", op, broker.ErrNotFound)
	}
	code, err := scriptWorkflowComplete.Run(ctx, b.client, b.workflowKeys(p.Queue, p.Run, ""), p.ID, p.Token, string(p.Result)).Int64()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if e := leaseErr(code); e != nil {
		return fmt.Errorf("%s: %w", op, e)
	}
	return nil
}

// WorkflowJobFail records a failed attempt of a job of a run, failing the
// run when a step's job dies, in one script call; see broker.WorkflowStore.
func (b *Broker) WorkflowJobFail(ctx context.Context, p *broker.WorkflowJobFailParams) (broker.State, error) {
	if err := b.open("fail workflow job"); err != nil {
		return "", err
	}
	if p == nil {
		return "", fmt.Errorf("redisbroker: fail workflow job: %w: params are nil", broker.ErrInvalidJob)
	}
	if p.RetryDelay < 0 || p.MaxAttempts < 0 {
		return "", fmt.Errorf("redisbroker: fail workflow job %s: %w: negative retry delay or max attempts", p.ID, broker.ErrInvalidJob)
	}
	op := fmt.Sprintf("redisbroker: fail job %s of run %s in %q", p.ID, p.Run, p.Queue)
	if broker.ValidateQueueName(p.Queue) != nil || p.Run == "" {
		return "", fmt.Errorf("%s: %w", op, broker.ErrNotFound)
	}
	discard := "0"
	if p.Discard {
		discard = "1"
	}
	reply, err := scriptWorkflowFail.Run(ctx, b.client, b.workflowKeys(p.Queue, p.Run, ""),
		p.ID, p.Token, p.Error, millis(p.RetryDelay), discard, p.MaxAttempts).Slice()
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	if e := leaseErr(num(reply, 0)); e != nil {
		return "", fmt.Errorf("%s: %w", op, e)
	}
	return broker.State(str(reply, 1)), nil
}

// WorkflowRunCancel cancels a running run in one script call; see
// broker.WorkflowStore.
func (b *Broker) WorkflowRunCancel(ctx context.Context, queue, id string) (*broker.WorkflowRun, error) {
	if err := b.open("cancel workflow run"); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("redisbroker: cancel run %s in %q", id, queue)
	if broker.ValidateQueueName(queue) != nil || id == "" {
		return nil, fmt.Errorf("%s: %w", op, broker.ErrNotFound)
	}
	reply, err := scriptWorkflowCancel.Run(ctx, b.client, b.workflowKeys(queue, id, "")).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	arr, st, err := status(reply)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	switch st {
	case "notfound":
		return nil, fmt.Errorf("%s: %w", op, broker.ErrNotFound)
	case "wrongstate":
		return nil, fmt.Errorf("%s: run is %s: %w", op, str(arr, 1), broker.ErrWrongState)
	}
	return b.WorkflowRunGet(ctx, queue, id)
}

// WorkflowRunGet reads a run and its steps' live job states in one script
// call; see broker.WorkflowStore.
func (b *Broker) WorkflowRunGet(ctx context.Context, queue, id string) (*broker.WorkflowRun, error) {
	if err := b.open("get workflow run"); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("redisbroker: get run %s in %q", id, queue)
	if broker.ValidateQueueName(queue) != nil || id == "" {
		return nil, fmt.Errorf("%s: %w", op, broker.ErrNotFound)
	}
	reply, err := scriptWorkflowGet.Run(ctx, b.client, b.workflowKeys(queue, id, "")).Slice()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(reply) < 2 {
		return nil, fmt.Errorf("%s: %w", op, broker.ErrNotFound)
	}
	run, err := decodeRun(queue, reply[0], reply[1])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return run, nil
}

// WorkflowRunList lists a workflow's runs newest first; see
// broker.WorkflowStore. Without a state it merges the four state indexes.
func (b *Broker) WorkflowRunList(ctx context.Context, p *broker.WorkflowRunListParams) (*broker.WorkflowRunListResult, error) {
	if err := b.open("list workflow runs"); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("redisbroker: list workflow runs: %w: params are nil", broker.ErrInvalidJob)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: list workflow runs: %w", err)
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	states := []broker.WorkflowState{p.State}
	if p.State == "" {
		states = []broker.WorkflowState{broker.WorkflowRunning, broker.WorkflowSucceeded, broker.WorkflowFailed, broker.WorkflowCancelled}
	}
	keys := make([]string, len(states))
	for i, s := range states {
		keys[i] = b.workflowIndexKey(p.Queue, string(s), p.Workflow)
	}
	ids, err := b.unionNewest(ctx, keys, p.Offset+limit+1)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: list runs of %q in %q: %w", p.Workflow, p.Queue, err)
	}
	res := &broker.WorkflowRunListResult{NextOffset: -1}
	if len(ids) > p.Offset+limit {
		res.NextOffset = p.Offset + limit
		ids = ids[:p.Offset+limit]
	}
	for _, id := range ids[min(p.Offset, len(ids)):] {
		run, err := b.WorkflowRunGet(ctx, p.Queue, id)
		if errors.Is(err, broker.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		res.Runs = append(res.Runs, run)
	}
	return res, nil
}

// unionNewest returns the ids of the n newest members over zsets scored by
// creation time, newest first.
func (b *Broker) unionNewest(ctx context.Context, keys []string, n int) ([]string, error) {
	cmds := make([]*redis.ZSliceCmd, len(keys))
	_, err := b.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = pipe.ZRevRangeWithScores(ctx, k, 0, int64(n-1))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var all []redis.Z
	for _, c := range cmds {
		all = append(all, c.Val()...)
	}
	// Newest first; ties by id, newest (largest UUIDv7) first.
	sortZ(all)
	ids := make([]string, 0, min(n, len(all)))
	for _, z := range all[:min(n, len(all))] {
		ids = append(ids, z.Member.(string))
	}
	return ids, nil
}

func sortZ(zs []redis.Z) {
	for i := 1; i < len(zs); i++ {
		for j := i; j > 0 && zLess(zs[j], zs[j-1]); j-- {
			zs[j], zs[j-1] = zs[j-1], zs[j]
		}
	}
}

func zLess(a, b redis.Z) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.Member.(string) > b.Member.(string)
}

// decodeRun builds a run from the workflow_get.lua reply.
func decodeRun(queue string, flat, live any) (*broker.WorkflowRun, error) {
	arr, ok := flat.([]any)
	if !ok || len(arr)%2 != 0 {
		return nil, fmt.Errorf("decode run: reply is %T", flat)
	}
	h := make(map[string]string, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		k, _ := arr[i].(string)
		v, _ := arr[i+1].(string)
		h[k] = v
	}
	var def luaDef
	if err := json.Unmarshal([]byte(h["def"]), &def); err != nil {
		return nil, fmt.Errorf("decode run definition: %w", err)
	}
	run := &broker.WorkflowRun{
		ID: h["id"], Queue: queue, Workflow: h["wf"], TenantID: h["tn"], CompanyID: h["co"],
		IdempotencyKey: h["ik"], State: broker.WorkflowState(h["st"]), Error: h["err"], FailedStep: h["fs"],
		CreatedAt: msTime(h["c"]), FinishedAt: msTime(h["f"]), OnSuccess: fromLua(def.OK), OnFailure: fromLua(def.Fail),
	}
	if in := h["in"]; in != "" {
		run.Input = json.RawMessage(in)
	}
	for _, s := range def.Steps {
		st := &broker.WorkflowStep{
			WorkflowStepDef:   broker.WorkflowStepDef{Name: s.Name, DependsOn: s.Deps, Job: *fromLua(&s.Job), Compensation: fromLua(s.Comp)},
			State:             broker.StepState(h["s:"+s.Name]),
			Error:             h["e:"+s.Name],
			StartedAt:         msTime(h["t:"+s.Name]),
			FinishedAt:        msTime(h["fn:"+s.Name]),
			CompensationState: broker.CompensationState(h["c:"+s.Name]),
		}
		st.Attempts, _ = strconv.Atoi(h["a:"+s.Name])
		st.CompletedSeq, _ = strconv.Atoi(h["cs:"+s.Name])
		if o := h["o:"+s.Name]; o != "" {
			st.Output = json.RawMessage(o)
		}
		run.Steps = append(run.Steps, st)
	}
	larr, _ := live.([]any)
	for i := 0; i+4 < len(larr); i += 5 {
		name, _ := larr[i].(string)
		st := run.Step(name)
		if st == nil {
			continue
		}
		js, _ := larr[i+1].(string)
		a, _ := larr[i+2].(string)
		started, _ := larr[i+3].(string)
		le, _ := larr[i+4].(string)
		applyLive(st, broker.State(js), a, msTime(started), le)
	}
	return run, nil
}

// applyLive overlays the live state of an enqueued step's job.
func applyLive(st *broker.WorkflowStep, js broker.State, attempt string, started time.Time, lastErr string) {
	if js == broker.StateActive {
		st.State = broker.StepRunning
	}
	if n, err := strconv.Atoi(attempt); err == nil && n > st.Attempts {
		st.Attempts = n
	}
	if !started.IsZero() {
		st.StartedAt = started
	}
	if lastErr != "" && st.Error == "" {
		st.Error = lastErr
	}
}

func msTime(s string) time.Time {
	if s = strings.TrimSpace(s); s == "" {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return fromMillis(ms)
}
