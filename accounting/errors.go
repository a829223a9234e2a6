package accounting

import (
	"errors"
	"fmt"
)

// Sentinel errors every Store returns, wrapped with what was being done.
// Test them with errors.Is.
var (
	// ErrNotFound: the tenant's company, account, party, document, payment
	// or journal entry does not exist. Another tenant's records are never
	// found.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: a record with that id (or code) already exists.
	ErrDuplicate = errors.New("already exists")
	// ErrInvalid: the input breaks a rule; the error is an *InvalidError
	// naming the field.
	ErrInvalid = errors.New("invalid input")
	// ErrUnbalanced: a journal entry's debits and credits differ in some
	// currency. It also matches ErrInvalid.
	ErrUnbalanced = fmt.Errorf("%w: journal entry does not balance", ErrInvalid)
	// ErrConflict: the change is refused by the document's current state:
	// the version given is not the latest, a later version is already
	// posted, or payments applied to an invoice exceed its new total.
	ErrConflict = errors.New("conflict with the current state")
)

// InvalidError names the input field that failed validation. It matches
// ErrInvalid with errors.Is.
type InvalidError struct {
	Field  string // e.g. "lines[2].quantity"
	Reason string
}

// Error says which field is wrong and why.
func (e *InvalidError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }
