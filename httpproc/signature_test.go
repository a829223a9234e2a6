package httpproc_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/httpproc"
)

// signed returns the headers of body sent as msg_1 at ts with secret.
func signed(t *testing.T, secret string, ts time.Time, body []byte) http.Header {
	t.Helper()
	sig, err := httpproc.Sign(secret, "msg_1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(httpproc.HeaderID, "msg_1")
	h.Set(httpproc.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(httpproc.HeaderSignature, sig)
	return h
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"j1","data":{"amount":"10.00"}}`)
	now := time.Now()
	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		secrets []string
		want    error // nil: accepted
	}{
		{"signed", signed(t, testSecret, now, body), body, []string{testSecret}, nil},
		{"tampered body", signed(t, testSecret, now, body), []byte(`{"id":"j1","data":{"amount":"99.00"}}`),
			[]string{testSecret}, httpproc.ErrNoMatchingSignature},
		{"wrong secret", signed(t, otherSecret, now, body), body, []string{testSecret}, httpproc.ErrNoMatchingSignature},
		{"stale timestamp", signed(t, testSecret, now.Add(-6*time.Minute), body), body, []string{testSecret}, httpproc.ErrBadTimestamp},
		{"future timestamp", signed(t, testSecret, now.Add(6*time.Minute), body), body, []string{testSecret}, httpproc.ErrBadTimestamp},
		{"rotation: old and new secret", signed(t, testSecret, now, body), body, []string{otherSecret, testSecret}, nil},
		{"no headers", http.Header{}, body, []string{testSecret}, httpproc.ErrMissingHeaders},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := httpproc.Verifier{Secrets: tc.secrets}
			err := v.Verify(tc.header, tc.body)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestVerifySeveralSignatures: a sender rotating its secret may send one
// signature per secret, space-separated; any match is enough.
func TestVerifySeveralSignatures(t *testing.T) {
	body := []byte(`{}`)
	h := signed(t, testSecret, time.Now(), body)
	other, _ := httpproc.Sign(otherSecret, "msg_1", time.Now(), body)
	h.Set(httpproc.HeaderSignature, other+" "+h.Get(httpproc.HeaderSignature))
	if err := httpproc.Verify(testSecret, h, body, time.Minute); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestVerifyToleranceAndClock(t *testing.T) {
	body := []byte(`{}`)
	sent := time.Unix(1_700_000_000, 0)
	h := signed(t, testSecret, sent, body)
	v := httpproc.Verifier{Secrets: []string{testSecret}, Tolerance: 30 * time.Second, Now: func() time.Time { return sent.Add(29 * time.Second) }}
	if err := v.Verify(h, body); err != nil {
		t.Fatalf("29 s late within a 30 s tolerance: %v", err)
	}
	v.Now = func() time.Time { return sent.Add(31 * time.Second) }
	if err := v.Verify(h, body); !errors.Is(err, httpproc.ErrBadTimestamp) {
		t.Fatalf("31 s late: %v, want ErrBadTimestamp", err)
	}
}

// TestBadSecrets: malformed secrets are refused with an error that does
// not quote them.
func TestBadSecrets(t *testing.T) {
	for _, s := range []string{"", "whsec_not*base64", "whsec_"} {
		_, err := httpproc.Sign(s, "msg_1", time.Now(), nil)
		if err == nil || (s != "" && s != "whsec_" && strings.Contains(err.Error(), s)) {
			t.Errorf("Sign with secret %q: %v, want an error not quoting it", s, err)
		}
		if _, err := httpproc.New(httpproc.EndpointConfig{URL: "http://127.0.0.1:1/x", Secret: s}); err == nil {
			t.Errorf("New with secret %q: no error", s)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  httpproc.EndpointConfig
		want string
	}{
		{"no target", httpproc.EndpointConfig{Secret: testSecret}, "no URL and no Instances"},
		{"relative URL", httpproc.EndpointConfig{URL: "/jobs", Secret: testSecret}, "not an absolute http or https URL"},
		{"ftp URL", httpproc.EndpointConfig{URL: "ftp://h/x", Secret: testSecret}, "not an absolute http or https URL"},
		{"password hidden", httpproc.EndpointConfig{URL: "ftp://u:hunter2@h/x", Secret: testSecret}, "xxxxx"},
		{"query hidden", httpproc.EndpointConfig{URL: "ftp://h/x?token=hunter2", Secret: testSecret}, "?redacted"},
		{"negative timeout", httpproc.EndpointConfig{URL: "http://h/x", Secret: testSecret, Timeout: -time.Second}, "timeout -1s is negative"},
		{"bad header", httpproc.EndpointConfig{URL: "http://h/x", Secret: testSecret, Headers: map[string]string{"a b": "c"}}, `header name "a b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := httpproc.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("New: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
