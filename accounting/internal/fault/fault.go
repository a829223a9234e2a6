// Package fault lets the conformance suite fail a store's write transaction
// at a chosen statement, as a crash there would, to check that each posting
// is all or nothing.
package fault

import "context"

type hookKey struct{}

// Hook is called before each statement of a write transaction with its
// number, from 1; a non-nil error fails the statement (and the
// transaction) with that error.
type Hook func(n int) error

// With returns ctx carrying h.
func With(ctx context.Context, h Hook) context.Context {
	return context.WithValue(ctx, hookKey{}, h)
}

// From returns the hook ctx carries, or nil.
func From(ctx context.Context) Hook {
	h, _ := ctx.Value(hookKey{}).(Hook)
	return h
}
