package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aibos/worker/retry"
)

// Retry a flaky call with exponential backoff. The fake Sleep prints each
// wait instead of waiting, so the example runs at once.
func ExampleManager_Retry() {
	m := retry.Manager{
		Policy: retry.Policy{MaxAttempts: 5, BaseDelay: time.Second, Multiplier: 2, MaxDelay: time.Minute},
		Sleep: func(ctx context.Context, d time.Duration) error {
			fmt.Println("  waiting", d)
			return nil
		},
	}
	calls := 0
	err := m.Retry(context.Background(), func(ctx context.Context) error {
		calls++
		fmt.Println("call", calls)
		if calls < 4 {
			return errors.New("ledger temporarily unavailable")
		}
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// call 1
	//   waiting 1s
	// call 2
	//   waiting 2s
	// call 3
	//   waiting 4s
	// call 4
	// err: <nil>
}

// When every attempt fails, Retry says how many it made and wraps the last
// error.
func ExampleManager_Retry_givingUp() {
	m := retry.Manager{
		Policy: retry.Policy{MaxAttempts: 3, BaseDelay: 500 * time.Millisecond},
		Sleep:  func(ctx context.Context, d time.Duration) error { return nil },
	}
	errTimeout := errors.New("bank API timed out")
	err := m.Retry(context.Background(), func(ctx context.Context) error { return errTimeout })
	fmt.Println(err)
	fmt.Println("is the last error:", errors.Is(err, errTimeout))
	// Output:
	// gave up after 3 attempts: bank API timed out
	// is the last error: true
}

// An error marked NoRetry stops the retries at once and is returned
// unwrapped. worker.NoRetry is the same marker, so one helper can serve
// both a processor and a retried call.
func ExampleNoRetry() {
	m := retry.Manager{Sleep: func(ctx context.Context, d time.Duration) error { return nil }}
	calls := 0
	err := m.Retry(context.Background(), func(ctx context.Context) error {
		calls++
		return retry.NoRetry(errors.New("invoice not found"))
	})
	fmt.Println(err, "- calls:", calls)
	// Output:
	// invoice not found - calls: 1
}

// Delay gives the wait before each retry: doubled each time, capped at
// MaxDelay. With Jitter each wait is drawn from [d/2, d].
func ExamplePolicy_Delay() {
	p := retry.Policy{BaseDelay: time.Second, Multiplier: 2, MaxDelay: 10 * time.Second}
	for n := 1; n <= 6; n++ {
		fmt.Printf("retry %d after %v\n", n, p.Delay(n))
	}
	// Output:
	// retry 1 after 1s
	// retry 2 after 2s
	// retry 3 after 4s
	// retry 4 after 8s
	// retry 5 after 10s
	// retry 6 after 10s
}
