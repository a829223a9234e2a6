package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// preciseWait blocks the calling goroutine for d, to within the kernel's
// timer slack (about 50 µs), without holding a P: it reads a timerfd
// through the runtime's poller. time.Sleep cannot stand in for a job of a
// few milliseconds: when every P is idle the runtime waits for its timers
// in epoll_wait, whose timeout it truncates to whole milliseconds
// (runtime/netpoll_epoll.go), so time.Sleep(2ms) took 2.5 ms on average in
// phase g's flood. A blocking nanosleep is precise but holds its P until
// sysmon takes it back, up to 10 ms later, which starves the Manager's own
// goroutines (on SQLite it cut the fairness-off flood to 1,000 jobs/s).
func preciseWait(d time.Duration) error {
	if d <= 0 {
		return nil // a zero it_value would disarm the timer, and the read would never end
	}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("wait %v: create timerfd: %w", d, err)
	}
	f := os.NewFile(uintptr(fd), "timerfd") // non-blocking, so reads park in the poller
	defer f.Close()
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Value: unix.NsecToTimespec(d.Nanoseconds())}, nil); err != nil {
		return fmt.Errorf("wait %v: arm timerfd: %w", d, err)
	}
	var expirations [8]byte
	if _, err := f.Read(expirations[:]); err != nil {
		return fmt.Errorf("wait %v: read timerfd: %w", d, err)
	}
	return nil
}
