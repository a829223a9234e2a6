package httpproc_test

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/retry"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// testSecret signs the tests' calls; otherSecret is a wrong one.
var (
	testSecret  = "whsec_" + base64.StdEncoding.EncodeToString([]byte("test-secret-0123456789abcdef0123"))
	otherSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("other-secret-0123456789abcdef012"))
)

// managerConfig is a Manager config with short intervals for tests.
func managerConfig(queue string, logger *slog.Logger) worker.ManagerConfig {
	return worker.ManagerConfig{
		Queues:           []worker.QueueConfig{{Name: queue}},
		Concurrency:      4,
		PollInterval:     10 * time.Millisecond,
		MaintainInterval: 50 * time.Millisecond,
		// A cancelled job learns it at the next heartbeat.
		LeaseDuration:     2 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		ShutdownTimeout:   5 * time.Second,
		Retry:             retry.Policy{BaseDelay: 10 * time.Millisecond, Multiplier: 1, MaxDelay: 10 * time.Millisecond},
		Logger:            logger,
	}
}

// startManager starts m and shuts it down when the test ends.
func startManager(t *testing.T, m *worker.Manager) {
	t.Helper()
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("start manager: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

// call is one request a test server received, with what verifying it
// said.
type call struct {
	header http.Header
	body   []byte
	// verified is Verify's verdict; official the official Standard
	// Webhooks library's, as a second opinion.
	verified, official error
}

// server is a real HTTP server on loopback that verifies and records every
// call, then answers with handle(n, w, r), n counting calls from 1.
type server struct {
	*httptest.Server
	secret string
	mu     sync.Mutex
	calls  []call
}

func newServer(t *testing.T, secret string, handle func(n int, body []byte, w http.ResponseWriter, r *http.Request)) *server {
	s := &server{secret: secret}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := call{header: r.Header.Clone(), body: body,
			verified: httpproc.Verify(secret, r.Header, body, 0), official: wh.Verify(body, r.Header)}
		s.mu.Lock()
		s.calls = append(s.calls, c)
		n := len(s.calls)
		s.mu.Unlock()
		handle(n, body, w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) received() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

// eventLog records a Manager's events.
type eventLog struct {
	mu     sync.Mutex
	events []worker.Event
}

func (l *eventLog) add(e worker.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) all() []worker.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]worker.Event(nil), l.events...)
}

// final returns the job's final event (completed or dead), if it came.
func (l *eventLog) final(id string) (worker.Event, bool) {
	for _, e := range l.all() {
		if e.Job.ID == id && (e.Kind == worker.EventCompleted || e.Kind == worker.EventDead) {
			return e, true
		}
	}
	return worker.Event{}, false
}

// discardLogger drops logs.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
