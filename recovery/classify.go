package recovery

import "errors"

// Typed is implemented by errors that know their class. Any error in a
// chain with an ErrorType method is classified by it.
type Typed interface {
	ErrorType() string
}

// ClassifiedError is an error tagged with a class by Classify.
type ClassifiedError struct {
	Class string
	Err   error
}

// Error returns the wrapped error's message.
func (e *ClassifiedError) Error() string {
	if e.Err == nil {
		return e.Class
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *ClassifiedError) Unwrap() error { return e.Err }

// ErrorType returns the class.
func (e *ClassifiedError) ErrorType() string { return e.Class }

// Classify tags err with class, e.g. Classify(recovery.NetworkError, err).
// Classify of a nil error is nil.
func Classify(class string, err error) error {
	if err == nil {
		return nil
	}
	return &ClassifiedError{Class: class, Err: err}
}

// ErrorType returns the class of the first error in err's chain that has
// one (see Typed), or "" if none has.
func ErrorType(err error) string {
	var t Typed
	if errors.As(err, &t) {
		return t.ErrorType()
	}
	return ""
}
