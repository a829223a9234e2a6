package scale

// NodeFailure marks err as a failure of the node it happened on (refused
// connection, timeout, 5xx), so that Balancer.Do counts it against the
// node and fails over. It returns nil for a nil err. errors.Is and
// errors.As see through it to err.
func NodeFailure(err error) error {
	if err == nil {
		return nil
	}
	return &nodeFailure{err}
}

// IsNodeFailure reports whether some error in err's chain has a method
// NodeFailure() bool that returns true. Packages that must not import
// scale implement that method on their own errors instead of calling
// NodeFailure.
func IsNodeFailure(err error) bool {
	// Walked by hand: errors.As would stop at the first implementer even if it said false.
	for err != nil {
		if f, ok := err.(interface{ NodeFailure() bool }); ok && f.NodeFailure() {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if IsNodeFailure(e) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

type nodeFailure struct{ err error }

func (e *nodeFailure) Error() string     { return e.err.Error() }
func (e *nodeFailure) Unwrap() error     { return e.err }
func (e *nodeFailure) NodeFailure() bool { return true }
