package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/notify"
	"github.com/aibos/worker/service"
)

// Where serve --demo's notifications go when no SMTP server is configured:
// an in-process outbox (logged), never the internet.
const (
	demoMailFrom = "AI-BOS demo <books@demo.invalid>"
	demoMailTo   = "customer@demo.invalid"
)

// notificationsQueue is the queue of email.notification and
// invoice.reminder jobs, served only where mail can go.
var notificationsQueue = worker.QueueConfig{Name: jobs.QueueNotifications, Priority: 5, Concurrency: 2, Fair: true}

// mailEnabled reports whether serve sends notifications: to SMTP_HOST, or,
// with demo, to the in-process outbox.
func mailEnabled(cfg *service.Config, demo bool) bool { return cfg.SMTPHost != "" || demo }

// serveNotifications adds the notifications queue to the served queues
// when mail is enabled and the configuration does not list it.
func serveNotifications(cfg *service.Config, demo bool) {
	if !mailEnabled(cfg, demo) {
		return
	}
	for _, q := range cfg.Queues {
		if q.Name == notificationsQueue.Name {
			return
		}
	}
	cfg.Queues = append(cfg.Queues, notificationsQueue)
}

// registerMail registers the email.notification processor on svc when
// mail is enabled: SMTP to SMTP_HOST, or the demo's in-process outbox,
// each recording what it sent in the broker's outbox.
func registerMail(svc *service.Service, cfg *service.Config, st accounting.Store, demo bool, log *slog.Logger) error {
	// Checked before mailEnabled: an authority file set without
	// SMTP_HOST is a mistake to report, not to ignore.
	roots, err := cfg.SMTPRootCAs()
	if err != nil {
		return err
	}
	if !mailEnabled(cfg, demo) {
		return nil
	}
	mc := jobs.MailConfig{From: cfg.SMTPFrom, To: cfg.SMTPTo}
	var sender notify.Sender
	if cfg.SMTPHost != "" {
		if sender, err = smtpSender(cfg, roots); err != nil {
			return err
		}
	} else {
		mc.From, mc.To = demoMailFrom, demoMailTo
		sender = &notify.Memory{OnSend: func(m *notify.Message) {
			log.Info("demo: notification kept in the in-process outbox", "message_id", m.MessageID, "to", m.To, "subject", m.Subject)
		}}
	}
	ob, err := notify.NewOutbox(svc.Broker(), jobs.QueueNotifications)
	if err != nil {
		return fmt.Errorf("register mail: %w", err)
	}
	if mc.Mailer, err = notify.NewMailer(sender, ob); err != nil {
		return fmt.Errorf("register mail: %w", err)
	}
	return jobs.RegisterMail(svc, st, mc)
}

// smtpSender is the sender to SMTP_HOST, trusting roots (SMTP_CA_FILE;
// nil: the system's authorities) for its STARTTLS certificate.
func smtpSender(cfg *service.Config, roots *x509.CertPool) (*notify.SMTP, error) {
	if cfg.SMTPFrom == "" {
		return nil, &service.ConfigError{Name: "SMTP_FROM", Want: "set it with SMTP_HOST: notifications need a sender"}
	}
	s, err := notify.NewSMTP(notify.SMTPConfig{Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUser,
		Password: cfg.SMTPPassword, StartTLS: cfg.SMTPStartTLS, RootCAs: roots})
	if err != nil {
		return nil, &service.ConfigError{Name: "SMTP_HOST", Want: err.Error()}
	}
	return s, nil
}
