package broker_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/aibos/worker/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestUniqueSlot(t *testing.T) {
	for _, c := range []struct{ tenant, key, slot string }{
		{"", "", ""},
		{"", "invoice-42", "invoice-42"},
		{"tenant-a", "", ""},
		{"tenant-a", "invoice-42", "\x1ftenant-a\x1finvoice-42"},
		{"tenant-b", "invoice-42", "\x1ftenant-b\x1finvoice-42"},
		{"a", "b|c:d", "\x1fa\x1fb|c:d"},
	} {
		if got := broker.UniqueSlot(c.tenant, c.key); got != c.slot {
			t.Errorf("UniqueSlot(%q, %q) = %q, want %q", c.tenant, c.key, got, c.slot)
		}
		if got := broker.UniqueKeyOfSlot(c.slot); got != c.key {
			t.Errorf("UniqueKeyOfSlot(%q) = %q, want %q", c.slot, got, c.key)
		}
	}
	// Different (tenant, key) pairs never share a slot, even when their
	// concatenations agree.
	if broker.UniqueSlot("ab", "c") == broker.UniqueSlot("a", "bc") {
		t.Errorf("tenants ab and a share the slot of keys c and bc")
	}
	// A malformed slot (not written by UniqueSlot) reads back unchanged.
	if got := broker.UniqueKeyOfSlot("\x1fno-second-separator"); got != "\x1fno-second-separator" {
		t.Errorf("UniqueKeyOfSlot of a malformed slot = %q", got)
	}
}
