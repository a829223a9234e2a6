package ops

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/recovery"
)

// TypeSync is the job type that pushes posted journal entries to a webhook.
const TypeSync = "data.sync"

// SyncTarget is a webhook that receives a tenant's journal entries.
type SyncTarget struct {
	// URL receives the pushes (POST, JSON). Required.
	URL string
	// Secret signs every push as the HTTP processors sign their calls
	// (Standard Webhooks, "whsec_" + base64). Required.
	Secret string
}

// SyncConfig configures the data.sync processor.
type SyncConfig struct {
	// Store is the ledger whose entries are pushed. Required.
	Store accounting.Store
	// Targets are the webhooks by tenant id; the "" entry, if any, serves
	// every tenant without one of its own. A tenant with neither is
	// skipped.
	Targets map[string]SyncTarget
	// Client makes the calls. Defaults to a client with a 30s timeout.
	Client *http.Client
	// PageSize is how many entries one push carries. Defaults to 100.
	PageSize int
	// Now reads the clock for signatures. Defaults to time.Now.
	Now func() time.Time
}

// Sync is the data.sync processor: for each company of the job's tenant
// (every tenant's for a job without one) it pushes the posted entries the
// company's target has not acknowledged yet, oldest first, a page per
// push, and advances the target's cursor in the ledger only after the
// receiver answered 2xx. A worker killed mid-sync leaves the cursor at the
// last acknowledged page: the next run resends at most that one page, and
// every entry carries its id so that the receiver can drop repeats.
type Sync struct {
	cfg SyncConfig
}

// NewSync checks cfg and returns the processor.
func NewSync(cfg SyncConfig) (*Sync, error) {
	if cfg.Store == nil {
		return nil, errors.New("data.sync: the ledger store is required")
	}
	for tenant, t := range cfg.Targets {
		if t.URL == "" {
			return nil, fmt.Errorf("data.sync: target of tenant %q: url is required", tenant)
		}
		if _, err := httpproc.Sign(t.Secret, "check", time.Unix(0, 0), nil); err != nil {
			return nil, fmt.Errorf("data.sync: target of tenant %q: %w", tenant, err)
		}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 100
	}
	if cfg.PageSize > 1000 {
		return nil, fmt.Errorf("data.sync: page size %d is above 1000", cfg.PageSize)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sync{cfg: cfg}, nil
}

// SyncPayload is a data.sync job's data: both optional. CompanyID limits
// the run to one company of the job's tenant.
type SyncPayload struct {
	TenantID  string `json:"tenantId,omitempty"`
	CompanyID string `json:"companyId,omitempty"`
}

// SyncMessage is the JSON body of one push.
type SyncMessage struct {
	Type      string      `json:"type"` // "ledger.entries"
	TenantID  string      `json:"tenantId"`
	CompanyID string      `json:"companyId"`
	Entries   []SyncEntry `json:"entries"`
}

// SyncEntry is a posted journal entry as pushed: ID is stable, so a
// receiver drops an entry it already has; Seq orders the company's
// entries.
type SyncEntry struct {
	ID       int64                  `json:"id"`
	Seq      int64                  `json:"seq"`
	Date     string                 `json:"date"`
	Memo     string                 `json:"memo"`
	Reverses int64                  `json:"reverses,omitempty"`
	Lines    []accounting.EntryLine `json:"lines"`
}

// Process runs one data.sync job: its result is {"pushed": n}.
func (s *Sync) Process(ctx context.Context, job *worker.Job) error {
	var p SyncPayload
	if len(job.Data) > 0 && string(job.Data) != "null" {
		if err := json.Unmarshal(job.Data, &p); err != nil {
			return invalid("decode the payload of job %s: %w", job.ID, err)
		}
	}
	if p.TenantID != "" && p.TenantID != job.TenantID {
		return invalid("payload of job %s: tenantId %q is not the job's tenant %q", job.ID, p.TenantID, job.TenantID)
	}
	if job.TenantID == "" && p.CompanyID != "" {
		return invalid("payload of job %s: companyId needs the job's tenant", job.ID)
	}
	pushed, err := s.Run(ctx, job.TenantID, p.CompanyID)
	if err != nil {
		return err
	}
	return worker.SetResult(ctx, map[string]int{"pushed": pushed})
}

// Run pushes what the targets have not acknowledged: of one company, of
// every company of tenant (company ""), or of every tenant (both ""). It
// returns how many entries it pushed, also when it fails part way.
func (s *Sync) Run(ctx context.Context, tenant, company string) (int, error) {
	tenants := []string{tenant}
	if tenant == "" {
		var err error
		if tenants, err = s.cfg.Store.Tenants(ctx); err != nil {
			return 0, fmt.Errorf("list the ledger's tenants: %w", err)
		}
	}
	pushed := 0
	for _, tenant := range tenants {
		target, ok := s.cfg.Targets[tenant]
		if !ok {
			if target, ok = s.cfg.Targets[""]; !ok {
				continue
			}
		}
		companies := []string{company}
		if company == "" {
			cs, err := s.cfg.Store.CompanyList(ctx, tenant)
			if err != nil {
				return pushed, fmt.Errorf("list the companies of tenant %s: %w", tenant, err)
			}
			companies = companies[:0]
			for _, c := range cs {
				companies = append(companies, c.ID)
			}
		}
		for _, c := range companies {
			n, err := s.company(ctx, target, accounting.Books{Tenant: tenant, Company: c})
			pushed += n
			if err != nil {
				return pushed, err
			}
		}
	}
	return pushed, nil
}

// CursorName names the ledger cursor of the webhook at url: a new URL
// starts from the first entry. It holds a hash of the URL, not the URL,
// which may carry a token.
func CursorName(url string) string {
	sum := sha256.Sum256([]byte(url))
	return "webhook " + hex.EncodeToString(sum[:12])
}

// company pushes one company's unacknowledged entries and returns how
// many it pushed. The store's errors name the books already.
func (s *Sync) company(ctx context.Context, t SyncTarget, b accounting.Books) (int, error) {
	name, pushed := CursorName(t.URL), 0
	for {
		at, err := s.cfg.Store.CursorGet(ctx, b, name)
		if err != nil {
			return pushed, err
		}
		page, err := s.cfg.Store.JournalSince(ctx, b, at, s.cfg.PageSize)
		if err != nil || len(page) == 0 {
			return pushed, err
		}
		if err := s.push(ctx, t, b, page); err != nil {
			return pushed, fmt.Errorf("push entries %d..%d of %s/%s: %w", page[0].Seq, page[len(page)-1].Seq, b.Tenant, b.Company, err)
		}
		pushed += len(page)
		err = s.cfg.Store.CursorAdvance(ctx, b, name, at, page[len(page)-1].Seq)
		if err != nil && !errors.Is(err, accounting.ErrConflict) { // a conflict: another run pushed too; read on from its cursor
			return pushed, err
		}
	}
}

// push sends one page, signed, and returns nil only for a 2xx answer.
func (s *Sync) push(ctx context.Context, t SyncTarget, b accounting.Books, page []accounting.JournalEntry) error {
	msg := SyncMessage{Type: "ledger.entries", TenantID: b.Tenant, CompanyID: b.Company, Entries: make([]SyncEntry, len(page))}
	for i, e := range page {
		msg.Entries[i] = SyncEntry{ID: e.ID, Seq: e.Seq, Date: e.Date.Format(time.DateOnly), Memo: e.Memo, Reverses: e.Reverses, Lines: e.Lines}
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode the push: %w", err)
	}
	now := s.cfg.Now()
	id := pushID(t.URL, b, page[0].Seq, page[len(page)-1].Seq)
	sig, err := httpproc.Sign(t.Secret, id, now, body)
	if err != nil {
		return worker.NoRetry(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return worker.NoRetry(fmt.Errorf("build the request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(httpproc.HeaderID, id)
	req.Header.Set(httpproc.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(httpproc.HeaderSignature, sig)
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return recovery.Classify(recovery.NetworkError, fmt.Errorf("post to the webhook: %w", err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests, c >= 500:
		return recovery.Classify(recovery.NetworkError, fmt.Errorf("the webhook answered %s", resp.Status))
	default:
		return worker.NoRetry(fmt.Errorf("the webhook refused the push: %s", resp.Status))
	}
}

// pushID is a push's webhook-id: the same when the same page is pushed
// again, so a receiver may also deduplicate whole pushes.
func pushID(url string, b accounting.Books, first, last int64) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%d\x00%d", url, b.Tenant, b.Company, first, last)))
	return "sync_" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// invalid makes a validation error that fails the job at once.
func invalid(format string, args ...any) error {
	return worker.NoRetry(recovery.Classify(recovery.ValidationError, fmt.Errorf(format, args...)))
}

// SyncHandler returns the receiving end of data.sync for a Go
// application: it verifies each push's signature with secret (401 when it
// does not verify), decodes it (400 when it does not decode) and hands it
// to receive. A receive error answers 500, so the push is sent again: the
// entries of a push may arrive more than once, and receive drops the ids
// it already has.
func SyncHandler(secret string, receive func(context.Context, *SyncMessage) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 32<<20))
		if err != nil {
			http.Error(w, "read the push: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := httpproc.Verify(secret, r.Header, body, 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var msg SyncMessage
		if err := json.Unmarshal(body, &msg); err != nil || msg.Type != "ledger.entries" {
			http.Error(w, "decode the push: not a ledger.entries message", http.StatusBadRequest)
			return
		}
		if err := receive(r.Context(), &msg); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
