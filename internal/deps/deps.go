// Package deps pins modules that packages still being written will import,
// so that concurrent work does not race on go.mod. Removed once they are used.
package deps

import (
	_ "go.uber.org/goleak"
	_ "modernc.org/sqlite"
)
