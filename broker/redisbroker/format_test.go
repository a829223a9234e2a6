package redisbroker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aibos/worker/broker/redisbroker"
)

// Ping stamps an unused prefix with the current stored format, and a
// broker refuses data written in a newer format instead of misreading it.
func TestStoredFormatVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, client, prefix := newBrokerKeys(t)
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("ping a fresh prefix: %v", err)
	}
	got, err := client.Get(ctx, prefix+":format").Int64()
	if err != nil || got != redisbroker.FormatVersion {
		t.Fatalf("format key after ping = %d, %v; want %d", got, err, redisbroker.FormatVersion)
	}

	// Data from a newer release: a fresh broker on the prefix refuses it.
	if err := client.Set(ctx, prefix+":format", redisbroker.FormatVersion+1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	newer, err := redisbroker.New(client, redisbroker.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	err = newer.Ping(ctx)
	if !errors.Is(err, redisbroker.ErrNewerFormat) {
		t.Fatalf("ping on newer-format data = %v, want ErrNewerFormat", err)
	}
	if v, _ := client.Get(ctx, prefix+":format").Int64(); v != redisbroker.FormatVersion+1 {
		t.Fatalf("a refusing broker rewrote the format key to %d", v)
	}
}
