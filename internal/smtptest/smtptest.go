// Package smtptest gives tests a real SMTP server: emersion/go-smtp's
// server on a free loopback port, in the test's process, keeping every
// message it accepts. The client side talks real SMTP over TCP to it.
package smtptest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message the server accepted.
type Message struct {
	From      string
	To        []string
	MessageID string // without angle brackets
	Subject   string
	Raw       []byte
	Body      string // decoded as sent (the test messages are plain text)
	// TLS holds the connection's TLS state when the message came over
	// STARTTLS, nil when it came in the clear.
	TLS *tls.ConnectionState
}

// Server is a running SMTP server.
type Server struct {
	Host string
	Port int

	srv      *smtp.Server
	user, pw string

	mu    sync.Mutex
	msgs  []Message
	news  chan struct{}
	onMsg func(Message)
}

// Options configure Start.
type Options struct {
	// Username and Password, when set, are required (AUTH PLAIN).
	Username, Password string
	// TLS, if set, makes the server offer STARTTLS with this
	// configuration (its certificate). Messages record whether they came
	// over it.
	TLS *tls.Config
	// OnMessage, if set, is called with each accepted message, after it is
	// stored and before the server answers the DATA command.
	OnMessage func(Message)
}

// Start starts a server on 127.0.0.1 and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s := &Server{user: o.Username, pw: o.Password, news: make(chan struct{}), onMsg: o.OnMessage}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{s: s, conn: c}, nil }))
	s.srv.Domain = "localhost"
	s.srv.TLSConfig = o.TLS
	s.srv.AllowInsecureAuth = true // loopback only
	s.srv.ReadTimeout, s.srv.WriteTimeout = 30*time.Second, 30*time.Second
	s.srv.ErrorLog = discard{}
	addr := l.Addr().(*net.TCPAddr)
	s.Host, s.Port = addr.IP.String(), addr.Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = s.srv.Close()
		<-done
	})
	return s
}

type discard struct{}

func (discard) Printf(string, ...any) {}
func (discard) Println(...any)        {}

// Messages returns a copy of the accepted messages, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait waits until the server accepted n messages, and fails the test
// after timeout.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		got, news := len(s.msgs), s.news
		s.mu.Unlock()
		if got >= n {
			return s.Messages()
		}
		select {
		case <-news:
		case <-deadline:
			t.Fatalf("smtptest: %d messages arrived within %v, want %d", got, timeout, n)
		}
	}
}

func (s *Server) add(m Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.news)
	s.news = make(chan struct{})
	on := s.onMsg
	s.mu.Unlock()
	if on != nil {
		on(m)
	}
}

type session struct {
	s      *Server
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (x *session) AuthMechanisms() []string {
	if x.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pw string) error {
		if user != x.s.user || pw != x.s.pw {
			return errors.New("invalid username or password")
		}
		x.authed = true
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.user != "" && !x.authed {
		return smtp.ErrAuthRequired
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: x.from, To: x.to, Raw: raw}
	if st, ok := x.conn.TLSConnectionState(); ok {
		m.TLS = &st
	}
	if pm, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		m.MessageID = strings.Trim(pm.Header.Get("Message-ID"), "<>")
		m.Subject = pm.Header.Get("Subject")
		b, _ := io.ReadAll(pm.Body)
		m.Body = string(b)
	}
	x.s.add(m)
	return nil
}

func (x *session) Reset() { x.from, x.to = "", nil }

func (x *session) Logout() error { return nil }
