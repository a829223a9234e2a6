package notify

import (
	"context"
	"sync"
)

// Memory is a Sender that keeps messages in the process instead of
// sending them: the demo's outbox, and a sink for tests of what is sent.
// It is safe for concurrent use.
type Memory struct {
	mu   sync.Mutex
	msgs []Message
	// OnSend, if set, is called with each message kept.
	OnSend func(m *Message)
}

// Send keeps a copy of m.
func (s *Memory) Send(_ context.Context, m *Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, *m)
	on := s.OnSend
	s.mu.Unlock()
	if on != nil {
		on(m)
	}
	return nil
}

// Messages returns a copy of the messages kept, in the order sent.
func (s *Memory) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}
