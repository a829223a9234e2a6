package redisbroker_test

import (
	"testing"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/brokertest"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

// brokerACL is the least a broker's Redis user needs, for keys and
// channels under the prefix "acl:" (docs/redis-security.md gives it for
// the default prefix): reading and writing keys, its Lua scripts, publish
// and subscribe for wake-ups, and the connection commands. Nothing
// administrative (CONFIG, FLUSHALL, KEYS, DEBUG) is granted.
const brokerACL = "resetkeys ~acl:* resetchannels &acl:* -@all +@read +@write +@scripting +@pubsub +@connection +@transaction +time -@dangerous"

// TestConformanceTLSACL runs the conformance suite against a redis-server
// that speaks only TLS, requires a client certificate signed by the test's
// authority, and is reached as an ACL user limited to brokerACL.
func TestConformanceTLSACL(t *testing.T) {
	certs := redistest.NewCerts(t)
	srv := redistest.StartWith(t, redistest.Options{TLS: certs, ACL: []string{"worker on >s3cret-pass " + brokerACL}})
	opts, err := redisbroker.ParseURL("rediss://worker:s3cret-pass@" + srv.Addr + "/0")
	if err != nil {
		t.Fatalf("parse url: %v", err)
	}
	conf := opts.TLS()
	if conf == nil {
		t.Fatal("a rediss url has no TLS configuration")
	}
	want := certs.ClientConfig()
	conf.RootCAs, conf.Certificates = want.RootCAs, want.Certificates
	client := opts.NewClient()
	t.Cleanup(func() { _ = client.Close() })
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		b, err := redisbroker.New(client, redisbroker.Config{Prefix: "acl:" + redistest.Prefix(t)})
		if err != nil {
			t.Fatalf("new broker: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}
