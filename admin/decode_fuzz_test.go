package admin

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/aibos/worker/broker"
)

// decodeEnqueue is the enqueue route's request decoding, as the handler
// does it, for a token scoped to tenant "t1".
func decodeEnqueue(body []byte, contentType string) (*EnqueueRequest, error) {
	s := &Server{cfg: Config{MaxBodyBytes: 4096}}
	r := httptest.NewRequest("POST", "/api/v1/queues/q/jobs", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", contentType)
	var req EnqueueRequest
	if err := s.decodeJSON(httptest.NewRecorder(), r, &req); err != nil {
		return nil, err
	}
	return &req, nil
}

// FuzzDecodeEnqueue: any body either is refused with one of the API's
// client errors, naming a field where the fault is one field's, or gives
// a job the store accepts as to its checks here: a type, a priority,
// delay and attempts in range, and the token's tenant, whatever the body
// said.
func FuzzDecodeEnqueue(f *testing.F) {
	for _, s := range []string{
		`{"type":"x"}`, `{"type":"x","data":{"a":[1,2]},"priority":2,"delay":1000,"attempts":3,"tenantId":"t1","companyId":"c"}`,
		`{"type":"x","tenantId":"t2"}`, `{"type":""}`, `{"type":"x","priority":-1}`, `{"type":"x","delay":1e40}`,
		`{"type":"x"} {}`, `[]`, `null`, `{"type":"x","extra":1}`, `{"type":"\u0000"}`, strings.Repeat(`[`, 5000),
	} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{"type":"x"}`), "text/plain")
	p := &Principal{Role: RoleOperator, TenantID: "t1"}
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req, err := decodeEnqueue(body, contentType)
		var spec struct {
			tenant string
			ok     bool
		}
		if err == nil {
			sp, serr := req.spec(p, "")
			err = serr
			if serr == nil {
				spec.tenant, spec.ok = sp.TenantID, true
				if sp.Type == "" || sp.Priority < 0 || sp.Priority > broker.MaxPriority || sp.Delay < 0 || sp.MaxAttempts < 0 || sp.MaxAttempts > maxAttempts {
					t.Fatalf("accepted a job out of range: %+v", sp)
				}
			}
		}
		if err == nil {
			if spec.tenant != "t1" {
				t.Fatalf("a token scoped to t1 enqueues for %q", spec.tenant)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v is not an *Error", err)
		}
		switch e.Status {
		case http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		default:
			t.Fatalf("status %d for bad input: %v", e.Status, e)
		}
		if e.Message == "" || e.Code == "" {
			t.Fatalf("error without code or message: %+v", e)
		}
		if (e.Status == http.StatusUnprocessableEntity || e.Status == http.StatusForbidden) && e.Field == "" {
			t.Fatalf("a %d names no field: %v", e.Status, e)
		}
	})
}

// FuzzDecodeListQuery: any query string is refused with a 400 naming the
// parameter (unless it has no name), or parses into a listing the store takes: a valid queue and
// state (or none), a limit of 1..1000, a cursor that encodes back to
// itself.
func FuzzDecodeListQuery(f *testing.F) {
	good := (&cursor{Queue: "q", State: "pending", Offset: 3}).encode()
	for _, s := range []string{
		"", "queue=q&state=dead&type=t&tenant=a&limit=10", "from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
		"cursor=" + good, "cursor=zz", "limit=0", "limit=1001", "state=odd", "queue=a%20b", "x=1", "queue=a&queue=b",
		"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return // the server's own parser refuses it before the handler
		}
		lq, err := parseListQuery(q)
		if err != nil {
			var e *Error
			_, unnamed := q[""]
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Field == "" && !unnamed {
				t.Fatalf("query %q: error %#v, want a 400 naming the parameter", raw, err)
			}
			return
		}
		if lq.limit < 1 || lq.limit > maxLimit {
			t.Fatalf("query %q: limit %d", raw, lq.limit)
		}
		if lq.filter.Queue != "" && broker.ValidateQueueName(lq.filter.Queue) != nil {
			t.Fatalf("query %q: accepted queue %q", raw, lq.filter.Queue)
		}
		if lq.filter.State != "" && !broker.State(lq.filter.State).Valid() {
			t.Fatalf("query %q: accepted state %q", raw, lq.filter.State)
		}
		if lq.after != nil {
			back, err := decodeCursor(lq.after.encode())
			if err != nil || *back != *lq.after {
				t.Fatalf("query %q: cursor %+v does not round-trip: %+v, %v", raw, lq.after, back, err)
			}
		}
	})
}
