package wake

// waiting reports whether a Wait is registered, for tests that must act
// only once it is.
func (h *Hub) waiting() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.waiters) > 0
}
