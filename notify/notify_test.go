package notify_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/smtptest"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/notify"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func message(id string) *notify.Message {
	return &notify.Message{
		MessageID: notify.MessageID("t1", id, "books.test"),
		From:      "Books <books@books.test>", To: []string{"customer@example.test"},
		Subject: "Invoice INV-1", Body: "Your invoice INV-1 over EUR 12.34.\n",
		Date: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
	}
}

func TestMessageIDIsStablePerJob(t *testing.T) {
	a, b := notify.MessageID("t1", "job-1", "x.test"), notify.MessageID("t1", "job-1", "x.test")
	if a != b || !strings.HasSuffix(a, "@x.test") {
		t.Fatalf("MessageID twice = %q, %q: want equal, @x.test", a, b)
	}
	for _, other := range []string{notify.MessageID("t2", "job-1", "x.test"), notify.MessageID("t1", "job-2", "x.test")} {
		if other == a {
			t.Fatalf("another tenant or job got the same Message-ID %q", a)
		}
	}
}

func TestSMTPSendsOnceThroughTheOutbox(t *testing.T) {
	for _, e := range testbroker.Engines {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			srv := smtptest.Start(t, smtptest.Options{Username: "mailer", Password: "s3cret"})
			s, err := notify.NewSMTP(notify.SMTPConfig{Host: srv.Host, Port: srv.Port, Username: "mailer", Password: "s3cret",
				StartTLS: notify.StartTLSNone, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ob, err := notify.NewOutbox(e.Open(t), "notifications")
			if err != nil {
				t.Fatal(err)
			}
			m, err := notify.NewMailer(s, ob)
			if err != nil {
				t.Fatal(err)
			}
			msg := message("job-1")
			res, err := m.Send(ctx, "t1", "job-1", msg)
			if err != nil || res.AlreadySent || res.Resent {
				t.Fatalf("first Send = %+v, %v: want sent, not again", res, err)
			}
			got := srv.Wait(t, 1, 10*time.Second)
			if got[0].MessageID != msg.MessageID || got[0].Subject != msg.Subject || got[0].To[0] != "customer@example.test" {
				t.Fatalf("arrived %+v, want Message-ID %s, subject %q", got[0], msg.MessageID, msg.Subject)
			}
			// A retry of the job finds it sent and sends nothing.
			res, err = m.Send(ctx, "t1", "job-1", message("job-1"))
			if err != nil || !res.AlreadySent {
				t.Fatalf("second Send = %+v, %v: want already sent", res, err)
			}
			// Another content under the same Message-ID is refused.
			changed := message("job-1")
			changed.Body = "something else"
			if _, err := m.Send(ctx, "t1", "job-1", changed); !errors.Is(err, notify.ErrContentChanged) {
				t.Fatalf("Send of changed content = %v, want ErrContentChanged", err)
			}
			if n := len(srv.Messages()); n != 1 {
				t.Fatalf("%d messages arrived, want 1", n)
			}
			entries, err := ob.List(ctx)
			if err != nil || len(entries) != 1 || entries[0].State != notify.StateSent || entries[0].Sends != 1 {
				t.Fatalf("outbox = %+v, %v: want one entry sent once", entries, err)
			}
		})
	}
}

// failOnce is a Sender that delivers through s but reports the first
// delivery as failed, as a worker killed after the server accepted the
// message but before recording it would.
type failOnce struct {
	s      notify.Sender
	failed bool
}

func (f *failOnce) Send(ctx context.Context, m *notify.Message) error {
	if err := f.s.Send(ctx, m); err != nil {
		return err
	}
	if !f.failed {
		f.failed = true
		return errors.New("connection lost after DATA")
	}
	return nil
}

func TestUnrecordedSendIsResentWithTheSameContent(t *testing.T) {
	ctx := context.Background()
	srv := smtptest.Start(t, smtptest.Options{})
	s, err := notify.NewSMTP(notify.SMTPConfig{Host: srv.Host, Port: srv.Port, StartTLS: notify.StartTLSNone})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := notify.NewOutbox(testbroker.SQLite(t), "notifications")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := notify.NewMailer(&failOnce{s: s}, ob)
	if _, err := m.Send(ctx, "t1", "job-1", message("job-1")); err == nil {
		t.Fatal("first Send succeeded, want the planted failure")
	}
	res, err := m.Send(ctx, "t1", "job-1", message("job-1"))
	if err != nil || !res.Resent {
		t.Fatalf("retry = %+v, %v: want sent again and marked resent", res, err)
	}
	got := srv.Wait(t, 2, 10*time.Second)
	if got[0].MessageID != got[1].MessageID || string(got[0].Raw) != string(got[1].Raw) {
		t.Fatalf("the resent message differs:\n%s\n---\n%s", got[0].Raw, got[1].Raw)
	}
}

func TestSMTPConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  notify.SMTPConfig
		want string
	}{
		{notify.SMTPConfig{}, "host is empty"},
		{notify.SMTPConfig{Host: "h", Port: 70000}, "port 70000"},
		{notify.SMTPConfig{Host: "h", Password: "p"}, "needs a username"},
		{notify.SMTPConfig{Host: "h", StartTLS: "always"}, `starttls "always"`},
	} {
		if _, err := notify.NewSMTP(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewSMTP(%+v) = %v, want an error saying %q", c.cfg, err, c.want)
		}
	}
	if s := (notify.SMTPConfig{Host: "h", Username: "u", Password: "hunter2"}).String(); strings.Contains(s, "hunter2") || !strings.Contains(s, "mandatory") {
		t.Errorf("String() = %q: want the password redacted and starttls mandatory with a username", s)
	}
}

func TestMandatorySTARTTLSRefusesAPlainServer(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	s, err := notify.NewSMTP(notify.SMTPConfig{Host: srv.Host, Port: srv.Port, StartTLS: notify.StartTLSMandatory, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), message("job-1")); err == nil {
		t.Fatal("Send over a server without STARTTLS succeeded with starttls mandatory")
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages arrived in the clear", n)
	}
}

func TestAuthRefusedIsAnError(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Username: "mailer", Password: "right"})
	s, _ := notify.NewSMTP(notify.SMTPConfig{Host: srv.Host, Port: srv.Port, Username: "mailer", Password: "wrong", StartTLS: notify.StartTLSNone})
	if err := s.Send(context.Background(), message("job-1")); err == nil {
		t.Fatal("Send with a wrong password succeeded")
	}
}
