package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// cookieName names the session cookie; loginCookie the double-submit
// token of the login form, which has no session yet.
const (
	cookieName  = "aibos_session"
	loginCookie = "aibos_login"
)

// session is one logged-in browser: its API token (never sent to the
// browser) and the CSRF token its forms carry.
type session struct {
	id      string
	token   string
	csrf    string
	expires time.Time
	// sso marks a session made by single sign-on: its token is an
	// internal one of Principals, revoked at logout.
	sso    bool
	notice string // guarded by the store's mutex
}

// sessionStore keeps sessions in memory, bounded: at MaxSessions the
// expired ones are dropped, then the oldest.
type sessionStore struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
}

func newSessionStore(ttl time.Duration, maxSessions int, now func() time.Time) *sessionStore {
	return &sessionStore{ttl: ttl, max: maxSessions, now: now, sessions: map[string]*session{}}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for token.
func (s *sessionStore) create(token string, sso bool) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.sessions) >= s.max {
		var oldest *session
		for id, v := range s.sessions {
			if now.After(v.expires) {
				delete(s.sessions, id)
			} else if oldest == nil || v.expires.Before(oldest.expires) {
				oldest = v
			}
		}
		if len(s.sessions) >= s.max && oldest != nil {
			delete(s.sessions, oldest.id)
		}
	}
	v := &session{id: randomToken(), token: token, csrf: randomToken(), expires: now.Add(s.ttl), sso: sso}
	s.sessions[v.id] = v
	return v
}

// get returns the live session of id.
func (s *sessionStore) get(id string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.sessions[id]
	if !ok {
		return nil, false
	}
	if s.now().After(v.expires) {
		delete(s.sessions, id)
		return nil, false
	}
	return v, true
}

// setNotice keeps a one-line result of an action for the session's next
// page. It lives in the session, not in the URL, so that a link cannot
// make the dashboard say something it did not.
func (s *sessionStore) setNotice(v *session, notice string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v.notice = notice
}

// takeNotice returns the session's notice and forgets it.
func (s *sessionStore) takeNotice(v *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := v.notice
	v.notice = ""
	return n
}

func (s *sessionStore) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, id)
}

// setCookie writes a cookie the browser's scripts cannot read, sent only
// to this site, and only over TLS when the request came over TLS.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// sessionOf returns the request's session, if it has a live one.
func (d *Dashboard) sessionOf(r *http.Request) (*session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil, false
	}
	return d.sessions.get(c.Value)
}

// sameToken compares two secrets in constant time; empty never matches.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// checkCSRF reports whether a form post carries its session's CSRF token.
func checkCSRF(r *http.Request, s *session) bool {
	return sameToken(r.PostFormValue("csrf"), s.csrf)
}
