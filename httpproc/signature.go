package httpproc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com/).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a message's timestamp may lie from the
// receiver's clock, either way, when Verify is given no tolerance: the
// Standard Webhooks recommendation.
const DefaultTolerance = 5 * time.Minute

// Errors Verify returns, wrapped; test with errors.Is.
var (
	// ErrMissingHeaders: a webhook header is absent or empty.
	ErrMissingHeaders = errors.New("missing webhook headers")
	// ErrBadTimestamp: the timestamp is not Unix seconds, or lies outside
	// the tolerance (a replayed or delayed message).
	ErrBadTimestamp = errors.New("webhook timestamp outside tolerance")
	// ErrNoMatchingSignature: no v1 signature matches any secret (a
	// tampered body, a wrong secret, or a forged message).
	ErrNoMatchingSignature = errors.New("no matching webhook signature")
)

// secretPrefix marks a Standard Webhooks secret.
const secretPrefix = "whsec_"

// parseSecret decodes "whsec_" + base64 (the prefix is optional). The
// error never quotes the secret.
func parseSecret(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("secret is empty")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil {
		return nil, errors.New("secret is not whsec_ followed by standard base64")
	}
	if len(key) == 0 {
		return nil, errors.New("secret decodes to no bytes")
	}
	return key, nil
}

// sign returns the base64 HMAC-SHA256 of "msgID.timestamp.body".
func sign(key []byte, msgID string, ts int64, body []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msgID))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, ts, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// Sign returns the webhook-signature header value ("v1,<base64>") of body
// sent as message msgID at ts, with secret ("whsec_" + base64).
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := parseSecret(secret)
	if err != nil {
		return "", fmt.Errorf("sign webhook: %w", err)
	}
	return "v1," + sign(key, msgID, ts.Unix(), body), nil
}

// setSignature sets the three webhook headers of a message.
func setSignature(h http.Header, key []byte, msgID string, now time.Time, body []byte) {
	ts := now.Unix()
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, "v1,"+sign(key, msgID, ts, body))
}

// messageID derives a webhook-id from a job's queue and id: the same on
// every attempt (so receivers can deduplicate), opaque, and safe in a
// header whatever characters the id holds.
func messageID(queue, id string) string {
	sum := sha256.Sum256([]byte(queue + "\x00" + id))
	return "msg_" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// Verifier checks Standard Webhooks signatures. Its zero value rejects
// everything; set Secrets.
type Verifier struct {
	// Secrets are the accepted signing secrets ("whsec_" + base64). List
	// the old and the new one while rotating: a message signed with any
	// of them is accepted.
	Secrets []string
	// Tolerance bounds the distance between the message's timestamp and
	// Now. Defaults to DefaultTolerance.
	Tolerance time.Duration
	// Now reads the receiver's clock. Defaults to time.Now.
	Now func() time.Time
}

// Verify returns nil if body and header form a message signed with one of
// the Verifier's secrets within the tolerance. Otherwise it returns an
// error wrapping ErrMissingHeaders, ErrBadTimestamp or
// ErrNoMatchingSignature, or one saying that a secret is malformed. It is
// safe for concurrent use.
func (v *Verifier) Verify(header http.Header, body []byte) error {
	msgID, tsText, sigs := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	if msgID == "" || tsText == "" || sigs == "" {
		return fmt.Errorf("verify webhook: %w", ErrMissingHeaders)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("verify webhook: %w: not Unix seconds", ErrBadTimestamp)
	}
	now, tol := time.Now, v.Tolerance
	if v.Now != nil {
		now = v.Now
	}
	if tol <= 0 {
		tol = DefaultTolerance
	}
	if d := now().Unix() - ts; d > int64(tol/time.Second) || -d > int64(tol/time.Second) {
		return fmt.Errorf("verify webhook: %w (%ds away from now, tolerance %v)", ErrBadTimestamp, d, tol)
	}
	for i, s := range v.Secrets {
		key, err := parseSecret(s)
		if err != nil {
			return fmt.Errorf("verify webhook: secret %d: %w", i+1, err)
		}
		want := []byte(sign(key, msgID, ts, body))
		for _, vs := range strings.Fields(sigs) {
			if sig, ok := strings.CutPrefix(vs, "v1,"); ok && hmac.Equal([]byte(sig), want) {
				return nil
			}
		}
	}
	return fmt.Errorf("verify webhook: %w", ErrNoMatchingSignature)
}

// Verify checks one message against secret ("whsec_" + base64) with the
// given tolerance (DefaultTolerance if zero): see Verifier.Verify. Go
// receivers of the worker's calls and callbacks use it before trusting a
// body.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration) error {
	v := Verifier{Secrets: []string{secret}, Tolerance: tolerance}
	return v.Verify(header, body)
}
