package httpproc

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"99999999999999999999", 0}, // unparsable as a number or a date
		{"86400", time.Hour},        // capped
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), time.Hour},
		{"soon", 0},
	}
	for _, tc := range tests {
		if got := retryAfter(tc.in, now, time.Hour); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestErrorClass(t *testing.T) {
	tests := map[string]string{
		`{"error":{"type":"ValidationError","message":"amount is negative"}}`: "ValidationError",
		`{"error":{"type":"billing.Quota-1"}}`:                                "billing.Quota-1",
		`{"error":{"type":"has space"}}`:                                      "",
		`{"error":{"type":"line\nbreak"}}`:                                    "",
		`{"error":"plain"}`:                                                   "",
		`not json`:                                                            "",
		`{"error":{"type":"` + strings.Repeat("x", 65) + `"}}`:                "",
	}
	for body, want := range tests {
		if got := errorClass(strings.NewReader(body)); got != want {
			t.Errorf("errorClass(%q) = %q, want %q", body, got, want)
		}
	}
}

// FuzzRetryAfter: any header value gives a delay within [0, limit].
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "-1", "Sun, 06 Nov 1994 08:49:37 GMT", "9223372036854775807", ""} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, v string) {
		if d := retryAfter(v, now, time.Hour); d < 0 || d > time.Hour {
			t.Fatalf("retryAfter(%q) = %v, outside [0, 1h]", v, d)
		}
	})
}

// FuzzErrorClass: whatever the body, the class is empty or a plain name.
func FuzzErrorClass(f *testing.F) {
	f.Add(`{"error":{"type":"ValidationError"}}`)
	f.Add(`{"error":{"type":"a\u0000b"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		c := errorClass(strings.NewReader(body))
		if len(c) > 64 || strings.ContainsAny(c, " \t\r\n\"\\") {
			t.Fatalf("errorClass gave %q", c)
		}
	})
}

// FuzzVerify: a message signed with Sign verifies, whatever its id and
// body; one byte more in the body does not.
func FuzzVerify(f *testing.F) {
	f.Add("msg_1", []byte(`{"a":1}`))
	f.Add("", []byte{})
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		key, _ := parseSecret(secret)
		h := http.Header{}
		setSignature(h, key, id, time.Now(), body)
		err := Verify(secret, h, body, 0)
		if h.Get(HeaderID) == "" || strings.TrimSpace(id) != id {
			return // not a value a header can carry as is
		}
		if err != nil {
			t.Fatalf("Verify of a signed message: %v", err)
		}
		if Verify(secret, h, append(body, 'x'), 0) == nil {
			t.Fatal("Verify accepted a longer body")
		}
	})
}
