package redisbroker_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

func TestParseURL(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		o, err := redisbroker.ParseURL("redis://u:pw@h:6380/5?pool_size=4")
		if err != nil {
			t.Fatal(err)
		}
		if o.Topology != redisbroker.Standalone || o.Simple.Addr != "h:6380" || o.Simple.DB != 5 ||
			o.Simple.Password != "pw" || o.Simple.PoolSize != 4 || !o.Simple.ContextTimeoutEnabled || o.FirstAddr() != "h:6380" {
			t.Errorf("options %+v", o.Simple)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		for _, u := range []string{"redis+cluster://u:pw@h1:7000,h2:7001?addr=h3:7002&read_timeout=2s",
			"REDIS+CLUSTER://u:pw@h1:7000,h2:7001,h3:7002/0?read_timeout=2s"} {
			o, err := redisbroker.ParseURL(u)
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			c := o.Cluster
			if o.Topology != redisbroker.Cluster || !slices.Equal(c.Addrs, []string{"h1:7000", "h2:7001", "h3:7002"}) ||
				c.Username != "u" || c.Password != "pw" || c.ReadTimeout.String() != "2s" || !c.ContextTimeoutEnabled ||
				c.ClusterStateReloadInterval != redisbroker.ClusterStateReload || o.FirstAddr() != "h1:7000" {
				t.Errorf("%s: options %+v", u, c)
			}
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		for _, u := range []string{"redis+sentinel://su:spw@s1:26379,s2:26379/mymaster?db=3&password=mpw",
			"redis+sentinel://su:spw@s1:26379?addr=s2:26379&master_name=mymaster&db=3&password=mpw"} {
			o, err := redisbroker.ParseURL(u)
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			f := o.Failover
			if o.Topology != redisbroker.Sentinel || f.MasterName != "mymaster" || !slices.Equal(f.SentinelAddrs, []string{"s1:26379", "s2:26379"}) ||
				f.DB != 3 || f.SentinelUsername != "su" || f.SentinelPassword != "spw" || f.Password != "mpw" || !f.ContextTimeoutEnabled ||
				o.FirstAddr() != "s1:26379" {
				t.Errorf("%s: options %+v", u, f)
			}
		}
	})
	t.Run("bad", func(t *testing.T) {
		for u, want := range map[string]string{
			"redis+cluster://h1:7000/2":                    "a Redis Cluster has only database 0",
			"redis+cluster://h1:7000,,h2:7001":             "empty entry",
			"redis+cluster://h1:7000?bogus=1":              "unexpected option: bogus",
			"redis+sentinel://s1:26379":                    "names no master",
			"redis+sentinel://s1:26379/a?master_name=b":    `names two masters, "a" and "b"`,
			"redis+sentinel://s1:26379/mymaster/2":         "not one master name",
			"redis+sentinel://s1:26379/mymaster?bogus=1":   "unexpected option: bogus",
			"redis+ring://h:1":                             `scheme "redis+ring" is none of`,
			"http://h:1":                                   `scheme "http" is none of`,
			"redis://u:secret@h:1/x":                       "invalid database number",
			"redis+cluster://u:secret@h1:7000/%zz":         "invalid URL escape",
			"redis+sentinel://u:secret@s:1/m?read_timeout": "",
		} {
			_, err := redisbroker.ParseURL(u)
			if want == "" {
				continue // accepted or not, only the password check below
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("ParseURL(%q) = %v, want an error saying %q", u, err, want)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseURL(%q) error shows the password: %v", u, err)
			}
		}
	})
}

// testOpenURL opens a broker through broker.Open with url, the form the
// service reads as REDIS_URL, and round-trips a job through it.
func testOpenURL(t *testing.T, url string) {
	ctx := t.Context()
	b, err := broker.Open(ctx, url+"?prefix="+redistest.Prefix(t))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	roundTrip(ctx, t, b, "q")
}

// roundTrip inserts a job into queue, fetches and completes it.
func roundTrip(ctx context.Context, t *testing.T, b broker.Broker, queue string) {
	t.Helper()
	id := "rt-" + redistest.Prefix(t)[5:]
	if _, err := b.JobInsert(ctx, &broker.JobInsertParams{Queue: queue, Type: "t", ID: id, MaxAttempts: 1}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: queue, Limit: 1, LeaseDuration: 30 * time.Second, WorkerID: "w"})
	if err != nil || len(jobs) != 1 || jobs[0].ID != id {
		t.Fatalf("fetch: %v, %v; want job %s", jobs, err, id)
	}
	errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: broker.JobLeaseParams{Queue: queue, ID: id, Token: jobs[0].LeaseToken}}})
	if err != nil || errs[0] != nil {
		t.Fatalf("complete: %v, %v", err, errs)
	}
}
