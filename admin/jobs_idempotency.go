package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// An Idempotency-Key makes a retried enqueue return the first request's
// answer instead of adding the jobs again. The key's record is a document
// of the queue (kind idempotencyKind) created in the same atomic commit
// as the jobs, with version 0 meaning "must not exist": of concurrent
// requests with one key exactly one commit applies, the others conflict
// and answer from the winner's record. The record then gets the answer
// (status and body) in a second commit; a request that finds it without
// one waits a moment for it, and if the first request died between its
// two commits, answers from the jobs themselves.
const (
	idempotencyKind   = "admin.idempotency"
	IdempotencyHeader = "Idempotency-Key"
	// IdempotencyTTL is how long a key is remembered.
	IdempotencyTTL = 24 * time.Hour
	// maxIdempotencyKey bounds the header's length.
	maxIdempotencyKey = 255
	// answerWait bounds how long a retry waits for the first request's
	// answer to be recorded.
	answerWait = 2 * time.Second
	// expiryIndex lists the records of a queue by their expiry in Unix
	// milliseconds, so that SweepIdempotency finds the expired ones
	// without reading the live ones.
	expiryIndex = "expires"
)

// idemRecord is the stored record of a key.
type idemRecord struct {
	// Fingerprint hashes the request the key was first used with; the key
	// reused with another request is refused.
	Fingerprint string    `json:"fingerprint"`
	ExpiresAt   time.Time `json:"expiresAt"`
	Jobs        []string  `json:"jobs"`
	// Status and Body are the answer, once recorded.
	Status int             `json:"status,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// idempotencyKey reads the header: absent is fine, present must be 1..255
// printable ASCII characters.
func idempotencyKey(r *http.Request) (string, bool, error) {
	vs := r.Header.Values(IdempotencyHeader)
	if len(vs) == 0 {
		return "", false, nil
	}
	k := vs[0]
	if len(vs) > 1 || k == "" || len(k) > maxIdempotencyKey {
		return "", false, Errorf(http.StatusBadRequest, CodeBadRequest, IdempotencyHeader, "give one %s of 1..%d characters", IdempotencyHeader, maxIdempotencyKey)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", false, Errorf(http.StatusBadRequest, CodeBadRequest, IdempotencyHeader, "%s must be printable ASCII", IdempotencyHeader)
		}
	}
	return k, true, nil
}

// idempotencyDocKey names a key's record: keys are per tenant scope (the
// token's tenant, "" for a cross-tenant token), so tenants never see each
// other's keys, and hashed, so any header value makes a valid document key.
func idempotencyDocKey(tenant, key string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + key))
	return hex.EncodeToString(h[:])
}

// fingerprint hashes what a request asks for: its route and its decoded
// body, so that the same request spelled with other white space matches.
func fingerprint(r *http.Request, req any) (string, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("fingerprint the request: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", r.Method, r.URL.Path)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, p *Principal, c *worker.Client, queue, key string, specs []worker.JobSpec, req any, answer func([]*broker.Job) any) error {
	ctx := r.Context()
	cm := s.cfg.Broker.(broker.Committer) // checked by New
	fp, err := fingerprint(r, req)
	if err != nil {
		return err
	}
	docKey := idempotencyDocKey(p.TenantID, key)
	// Each round either commits or sees a record that another request
	// committed; a round can lose only to a record that expired meanwhile,
	// so few rounds suffice.
	for range 5 {
		var version int64
		doc, err := cm.DocGet(ctx, queue, idempotencyKind, docKey)
		switch {
		case err == nil:
			var rec idemRecord
			if err := json.Unmarshal(doc.Body, &rec); err != nil {
				return fmt.Errorf("read idempotency record: %w", err)
			}
			if s.cfg.Now().Before(rec.ExpiresAt) {
				return s.replay(ctx, w, cm, c, queue, docKey, &rec, fp, answer)
			}
			version = doc.Version // expired: take the key over
		case !errors.Is(err, broker.ErrDocNotFound):
			return storeErr(err)
		}
		ps := make([]*broker.CommitInsert, len(specs))
		rec := idemRecord{Fingerprint: fp, ExpiresAt: s.cfg.Now().Add(IdempotencyTTL)}
		for i, sp := range specs {
			jp, err := c.InsertParams(queue, sp)
			if err != nil {
				return storeErr(err)
			}
			ps[i] = &broker.CommitInsert{Job: jp}
			rec.Jobs = append(rec.Jobs, jp.ID)
		}
		body, _ := json.Marshal(rec)
		// A write replaces the document's index entries, so both writes
		// of the record carry its expiry.
		index := []broker.IndexEntry{{Name: expiryIndex, Score: rec.ExpiresAt.UnixMilli()}}
		res, err := cm.Commit(ctx, &broker.CommitParams{Scope: queue, Insert: ps,
			Docs: []*broker.DocWrite{{Kind: idempotencyKind, Key: docKey, Version: version, Body: body, Index: index}}})
		if errors.Is(err, broker.ErrConflict) {
			continue
		}
		if err != nil {
			return storeErr(err)
		}
		out, _ := json.Marshal(answer(res.Jobs))
		rec.Status, rec.Body = http.StatusCreated, out
		body, _ = json.Marshal(rec)
		if _, err := cm.Commit(ctx, &broker.CommitParams{Scope: queue,
			Docs: []*broker.DocWrite{{Kind: idempotencyKind, Key: docKey, Version: res.Versions[0], Body: body, Index: index}}}); err != nil {
			// The jobs are in; a retry answers from them instead.
			s.log.Warn("admin: record an idempotent answer", "queue", queue, "err", err)
		}
		writeRaw(w, http.StatusCreated, out)
		return nil
	}
	return Errorf(http.StatusConflict, CodeConflict, IdempotencyHeader, "the %s is being used by concurrent requests; retry", IdempotencyHeader)
}

// sweepPage bounds how many expired records one commit deletes.
const sweepPage = 500

// SweepIdempotency deletes the Idempotency-Key records of every queue of
// b that expired at or before now, and returns how many it deleted. A
// service runs it now and then (hourly is plenty): records are refused
// for replay once expired anyway, so the sweep only reclaims space. It is
// safe to run concurrently with requests and with other sweeps: a record
// rewritten meanwhile is left alone. b must implement broker.Committer.
func SweepIdempotency(ctx context.Context, b broker.Broker, now time.Time) (int, error) {
	cm, ok := b.(broker.Committer)
	if !ok {
		return 0, fmt.Errorf("sweep idempotency records: broker %T does not implement broker.Committer", b)
	}
	queues, err := b.QueueList(ctx)
	if err != nil {
		return 0, fmt.Errorf("sweep idempotency records: list queues: %w", err)
	}
	deleted := 0
	for _, q := range queues {
		n, err := sweepQueue(ctx, cm, q, now)
		deleted += n
		if err != nil {
			return deleted, fmt.Errorf("sweep idempotency records of queue %q: %w", q, err)
		}
	}
	return deleted, nil
}

// sweepQueue deletes one queue's expired records a page at a time. A page
// whose commit conflicts (a record was taken over meanwhile) is deleted
// record by record instead, and the records left are skipped over.
func sweepQueue(ctx context.Context, cm broker.Committer, queue string, now time.Time) (int, error) {
	deleted, skipped := 0, 0
	for {
		page, err := cm.DocList(ctx, &broker.DocListParams{Scope: queue, Kind: idempotencyKind,
			Index: expiryIndex, Max: now.UnixMilli(), Offset: skipped, Limit: sweepPage})
		if err != nil {
			return deleted, err
		}
		if len(page.Docs) == 0 {
			return deleted, nil
		}
		ws := make([]*broker.DocWrite, len(page.Docs))
		for i, d := range page.Docs {
			ws[i] = &broker.DocWrite{Kind: idempotencyKind, Key: d.Key, Version: d.Version, Delete: true}
		}
		_, err = cm.Commit(ctx, &broker.CommitParams{Scope: queue, Docs: ws})
		if err == nil {
			deleted += len(ws)
			continue
		}
		if !errors.Is(err, broker.ErrConflict) {
			return deleted, err
		}
		for _, w := range ws {
			_, err := cm.Commit(ctx, &broker.CommitParams{Scope: queue, Docs: []*broker.DocWrite{w}})
			switch {
			case err == nil:
				deleted++
			case errors.Is(err, broker.ErrConflict):
				skipped++
			default:
				return deleted, err
			}
		}
	}
}

// replay answers a request whose key has a record.
func (s *Server) replay(ctx context.Context, w http.ResponseWriter, cm broker.Committer, c *worker.Client, queue, docKey string, rec *idemRecord, fp string, answer func([]*broker.Job) any) error {
	if rec.Fingerprint != fp {
		return Errorf(http.StatusUnprocessableEntity, CodeIdempotency, IdempotencyHeader, "this %s was used with another request", IdempotencyHeader)
	}
	wait := time.NewTimer(answerWait)
	defer wait.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for rec.Status == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait.C:
			return s.answerFromJobs(ctx, w, c, queue, rec, answer)
		case <-tick.C:
		}
		doc, err := cm.DocGet(ctx, queue, idempotencyKind, docKey)
		if err != nil {
			return storeErr(err)
		}
		if err := json.Unmarshal(doc.Body, rec); err != nil {
			return fmt.Errorf("read idempotency record: %w", err)
		}
	}
	writeRaw(w, rec.Status, rec.Body)
	return nil
}

// answerFromJobs answers a key whose first request inserted its jobs but
// did not record its answer: with the jobs as they are now.
func (s *Server) answerFromJobs(ctx context.Context, w http.ResponseWriter, c *worker.Client, queue string, rec *idemRecord, answer func([]*broker.Job) any) error {
	jobs := make([]*broker.Job, len(rec.Jobs))
	for i, id := range rec.Jobs {
		j, err := c.Get(ctx, queue, id)
		if err != nil {
			return storeErr(err)
		}
		jobs[i] = j
	}
	writeJSON(w, http.StatusCreated, answer(jobs))
	return nil
}

// writeRaw writes an encoded JSON body as writeJSON does.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
