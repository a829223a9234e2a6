// Package logtest gives tests a slog handler that counts the records logged
// by message, so that a test can assert a warning was logged once, or never.
package logtest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Counter is a slog.Handler, enabled at every level, that counts records
// by message. Safe for concurrent use.
type Counter struct {
	mu     sync.Mutex
	counts map[string]int
}

// NewLogger returns a logger whose records c counts.
func NewLogger() (*slog.Logger, *Counter) {
	c := &Counter{counts: map[string]int{}}
	return slog.New(c), c
}

// Enabled reports true: every level is counted.
func (c *Counter) Enabled(context.Context, slog.Level) bool { return true }

// Handle counts r under its message.
func (c *Counter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.counts[r.Message]++
	c.mu.Unlock()
	return nil
}

// WithAttrs returns c: attributes do not change what is counted.
func (c *Counter) WithAttrs([]slog.Attr) slog.Handler { return c }

// WithGroup returns c.
func (c *Counter) WithGroup(string) slog.Handler { return c }

// Count returns how many records had message msg.
func (c *Counter) Count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[msg]
}

// CountContaining returns how many records had a message containing s,
// for messages that carry values (a path, a setting).
func (c *Counter) CountContaining(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for msg, k := range c.counts {
		if strings.Contains(msg, s) {
			n += k
		}
	}
	return n
}

// Buffer is an io.Writer that keeps what is written, for a logger whose
// whole lines (attributes included) a test searches, or a child process's
// output. Safe for concurrent use; the zero value is ready.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// NewTextLogger returns a text logger at every level writing to a Buffer.
func NewTextLogger() (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
