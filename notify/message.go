package notify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// Message is one e-mail. Every field is part of its content: two attempts
// of one job must build equal Messages.
type Message struct {
	// MessageID is the Message-ID without angle brackets (see MessageID).
	MessageID string
	From      string
	To        []string
	Subject   string
	// Body is plain text.
	Body string
	// Date is the message's date: the job's creation time, so that a
	// retry sends the same message.
	Date time.Time
}

// MessageID returns the Message-ID of the message a job sends:
// "notification.<hash>@<domain>", the hash taken over the tenant and the
// job id, so that every attempt of the job, in any process, names the same
// message, and no two jobs (or tenants) share one. domain is the sender's
// domain.
func MessageID(tenant, jobID, domain string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + jobID))
	return "notification." + hex.EncodeToString(h[:16]) + "@" + domain
}

// Domain returns the domain of an address such as "Books <books@acme.test>"
// (for MessageID), or an error if addr is no address.
func Domain(addr string) (string, error) {
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return "", fmt.Errorf("parse sender address %q: %w", addr, err)
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at < 0 || at == len(a.Address)-1 {
		return "", fmt.Errorf("sender address %q has no domain", addr)
	}
	return a.Address[at+1:], nil
}

// Validate reports what is wrong with m, if anything.
func (m *Message) Validate() error {
	var errs []error
	if m.MessageID == "" || strings.ContainsAny(m.MessageID, "<> \r\n") || !strings.Contains(m.MessageID, "@") {
		errs = append(errs, fmt.Errorf("message id %q is not id@domain", m.MessageID))
	}
	if _, err := mail.ParseAddress(m.From); err != nil {
		errs = append(errs, fmt.Errorf("from %q: %w", m.From, err))
	}
	if len(m.To) == 0 {
		errs = append(errs, errors.New("no recipient"))
	}
	for _, to := range m.To {
		if _, err := mail.ParseAddress(to); err != nil {
			errs = append(errs, fmt.Errorf("recipient %q: %w", to, err))
		}
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		errs = append(errs, errors.New("subject spans lines"))
	}
	if m.Date.IsZero() {
		errs = append(errs, errors.New("date is zero"))
	}
	return errors.Join(errs...)
}

// Hash returns a digest of the message's content, which the outbox keeps
// to recognise a retry of the same message.
func (m *Message) Hash() string {
	var b bytes.Buffer
	for _, f := range []string{m.MessageID, m.From, strings.Join(m.To, ","), m.Subject, m.Date.UTC().Format(time.RFC3339Nano), m.Body} {
		fmt.Fprintf(&b, "%d:%s\n", len(f), f)
	}
	h := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(h[:])
}
