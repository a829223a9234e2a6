//go:build !linux

package main

import "time"

// preciseWait blocks for d. Outside Linux it is time.Sleep, which may
// oversleep by up to a millisecond (see wait_linux.go).
func preciseWait(d time.Duration) error {
	time.Sleep(d)
	return nil
}
