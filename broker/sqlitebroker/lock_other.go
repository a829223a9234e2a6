//go:build !unix

package sqlitebroker

import "os"

// lockFile does nothing on platforms without flock: there, keeping a second
// process away from the file is the operator's job.
func lockFile(path string) (*os.File, error) { return nil, nil }
