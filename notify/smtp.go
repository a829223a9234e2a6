package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Sender delivers a message. Send is safe for concurrent use; it returns
// nil only once the receiving server accepted the message.
type Sender interface {
	Send(ctx context.Context, m *Message) error
}

// StartTLS policies of SMTPConfig.
const (
	// StartTLSOpportunistic upgrades the connection when the server offers
	// STARTTLS and sends in the clear otherwise.
	StartTLSOpportunistic = "opportunistic"
	// StartTLSMandatory refuses to send unless the server offers STARTTLS.
	StartTLSMandatory = "mandatory"
	// StartTLSNone never upgrades (a relay on the same host).
	StartTLSNone = "none"
)

// SMTPConfig names an SMTP server to submit mail to.
type SMTPConfig struct {
	Host string
	// Port defaults to 587.
	Port int
	// Username and Password authenticate (SMTP AUTH, the best mechanism
	// the server offers; PLAIN with StartTLS none) when Username is set.
	Username string
	Password string
	// StartTLS is StartTLSOpportunistic, StartTLSMandatory or
	// StartTLSNone. Defaults to StartTLSMandatory when Username is set (a
	// password never crosses the network in the clear), else
	// StartTLSOpportunistic.
	StartTLS string
	// RootCAs, when set, are the only authorities the server's STARTTLS
	// certificate may be signed by (a relay with a private authority).
	// Defaults to nil: the system's. A certificate no authority vouches
	// for fails the send; it never downgrades to cleartext.
	RootCAs *x509.CertPool
	// Timeout bounds connecting and each command. Defaults to 30 s.
	Timeout time.Duration
}

// String describes c for logs, the password redacted.
func (c SMTPConfig) String() string {
	pw := ""
	if c.Password != "" {
		pw = ":xxxxx"
	}
	user := ""
	if c.Username != "" {
		user = c.Username + pw + "@"
	}
	return fmt.Sprintf("smtp://%s%s:%d (starttls %s)", user, c.Host, c.port(), c.startTLS())
}

func (c SMTPConfig) port() int {
	if c.Port == 0 {
		return 587
	}
	return c.Port
}

func (c SMTPConfig) startTLS() string {
	switch {
	case c.StartTLS != "":
		return c.StartTLS
	case c.Username != "":
		return StartTLSMandatory
	}
	return StartTLSOpportunistic
}

// SMTP is a Sender submitting to an SMTP server, one connection per
// message (notifications are few; a pool would hold connections the
// server times out).
type SMTP struct {
	cfg  SMTPConfig
	opts []gomail.Option
}

// NewSMTP returns an SMTP sender for cfg, or an error naming what is wrong
// with cfg.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	if strings.TrimSpace(cfg.Host) == "" {
		return nil, errors.New("smtp sender: host is empty")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("smtp sender: port %d is not 0..65535", cfg.Port)
	}
	if cfg.Password != "" && cfg.Username == "" {
		return nil, errors.New("smtp sender: a password needs a username")
	}
	policy := map[string]gomail.TLSPolicy{
		StartTLSOpportunistic: gomail.TLSOpportunistic, StartTLSMandatory: gomail.TLSMandatory, StartTLSNone: gomail.NoTLS,
	}
	tp, ok := policy[cfg.startTLS()]
	if !ok {
		return nil, fmt.Errorf("smtp sender: starttls %q is not opportunistic, mandatory or none", cfg.StartTLS)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	opts := []gomail.Option{gomail.WithPort(cfg.port()), gomail.WithTLSPolicy(tp), gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(&tls.Config{ServerName: cfg.Host, RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12})}
	if cfg.Username != "" {
		// Automatic discovery never sends a password in the clear; with
		// StartTLS none the operator chose a cleartext relay (on the same
		// host), so PLAIN goes without TLS.
		auth := gomail.SMTPAuthAutoDiscover
		if tp == gomail.NoTLS {
			auth = gomail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, gomail.WithSMTPAuth(auth),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	return &SMTP{cfg: cfg, opts: opts}, nil
}

// Send submits m to the server.
func (s *SMTP) Send(ctx context.Context, m *Message) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("send message %s: %w", m.MessageID, err)
	}
	msg := gomail.NewMsg()
	if err := msg.From(m.From); err != nil {
		return fmt.Errorf("send message %s: from: %w", m.MessageID, err)
	}
	if err := msg.To(m.To...); err != nil {
		return fmt.Errorf("send message %s: to: %w", m.MessageID, err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.MessageID)
	msg.SetDateWithValue(m.Date.UTC())
	msg.SetBodyString(gomail.TypeTextPlain, m.Body)
	c, err := gomail.NewClient(s.cfg.Host, s.opts...)
	if err != nil {
		return fmt.Errorf("send message %s: %w", m.MessageID, err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return fmt.Errorf("send message %s to %s: the server's certificate is not trusted (give its authority in RootCAs): %w", m.MessageID, s.cfg, err)
		}
		return fmt.Errorf("send message %s to %s: %w", m.MessageID, s.cfg, err)
	}
	return nil
}
