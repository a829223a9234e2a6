package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/brokertest"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

// functionsBroker returns a broker on a server of its own (started with
// args), its admin client and the broker's user's client.
func functionsBroker(t *testing.T, o redistest.Options, url func(addr string) string) (*redisbroker.Broker, *redis.Client) {
	t.Helper()
	srv := redistest.StartWith(t, o)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = admin.Close() })
	u := "redis://" + srv.Addr
	if url != nil {
		u = url(srv.Addr)
	}
	b, err := redisbroker.Open(u, redisbroker.Config{Prefix: "acl:f"})
	if err != nil {
		t.Fatalf("open broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, admin
}

func insertJob(ctx context.Context, b broker.Broker, queue, id string) error {
	_, err := b.JobInsert(ctx, &broker.JobInsertParams{ID: id, Queue: queue, Type: "t", MaxAttempts: 3})
	return err
}

// libraries returns the Functions libraries on the server, by name, with
// their functions' names and flags.
func libraries(t *testing.T, admin *redis.Client) map[string]map[string][]string {
	t.Helper()
	libs, err := admin.FunctionList(context.Background(), redis.FunctionListQuery{}).Result()
	if err != nil {
		t.Fatalf("FUNCTION LIST: %v", err)
	}
	out := map[string]map[string][]string{}
	for _, l := range libs {
		out[l.Name] = map[string][]string{}
		for _, f := range l.Functions {
			out[l.Name][f.Name] = f.Flags
		}
	}
	return out
}

// TestFunctionsLoadedOnDemand: the first call loads the library, every
// script is one of its functions, called with FCALL (never EVAL), and a
// server that lost it (FUNCTION FLUSH) gets it again on the next call, on
// the single-call and the pipelined path alike.
func TestFunctionsLoadedOnDemand(t *testing.T) {
	ctx := context.Background()
	b, admin := functionsBroker(t, redistest.Options{}, nil)
	name, n := redisbroker.Library()
	if got := libraries(t, admin); len(got) != 0 {
		t.Fatalf("a new server has libraries %v", got)
	}
	for i := range 3 {
		if err := insertJob(ctx, b, "q", fmt.Sprintf("j%d", i)); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	libs := libraries(t, admin)
	if len(libs) != 1 || len(libs[name]) != n {
		t.Fatalf("libraries after an insert: %v, want %s with %d functions", libs, name, n)
	}
	if flags := libs[name][name+"_get"]; len(flags) != 1 || flags[0] != "no-writes" {
		t.Errorf("get's flags %v, want no-writes", flags)
	}
	if flags := libs[name][name+"_complete"]; len(flags) != 1 || flags[0] != "allow-oom" {
		t.Errorf("complete's flags %v, want allow-oom", flags)
	}
	if flags := libs[name][name+"_insert"]; len(flags) != 0 {
		t.Errorf("insert's flags %v, want none", flags)
	}

	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 2, LeaseDuration: time.Minute, WorkerID: "w"})
	if err != nil || len(jobs) != 2 {
		t.Fatalf("fetch: %d jobs, %v", len(jobs), err)
	}
	if err := admin.FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// JobComplete pipelines its script per queue.
	errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{
		{JobLeaseParams: broker.JobLeaseParams{Queue: "q", ID: jobs[0].ID, Token: jobs[0].LeaseToken}},
		{JobLeaseParams: broker.JobLeaseParams{Queue: "q", ID: jobs[1].ID, Token: jobs[1].LeaseToken}},
	})
	if err != nil || errors.Join(errs...) != nil {
		t.Fatalf("complete after FUNCTION FLUSH: %v %v", err, errs)
	}
	if libs := libraries(t, admin); len(libs[name]) != n {
		t.Fatalf("libraries after the flush and a completion: %v", libs)
	}
	if err := admin.FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: jobs[0].ID})
	if err != nil || j.State != broker.StateCompleted {
		t.Fatalf("get after FUNCTION FLUSH: %+v, %v", j, err)
	}
	if !redisbroker.UsesFunctions(b) {
		t.Error("the broker runs scripts on a server with Functions")
	}
	stats, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stats, "cmdstat_fcall:") || strings.Contains(stats, "cmdstat_eval") {
		t.Errorf("commandstats: want FCALL and no EVAL or EVALSHA:\n%s", stats)
	}
}

// TestFunctionsTwoReleasesShareAServer: another release's library (other
// code) has another name and other function names, so both load on one
// server, as in a rolling upgrade, and each release calls its own.
func TestFunctionsTwoReleasesShareAServer(t *testing.T) {
	ctx := context.Background()
	b, admin := functionsBroker(t, redistest.Options{}, nil)
	name, n := redisbroker.Library()
	lib := redisbroker.ReadLua("lib.lua")
	if same, _ := redisbroker.LibraryWith(lib, nil); same != name {
		t.Fatalf("the same code gave library %s, this one is %s", same, name)
	}
	if flagged, _ := redisbroker.LibraryWith(lib, map[string]string{"insert.lua": "allow-oom"}); flagged == name {
		t.Fatalf("other flags gave the same library name %s", name)
	}
	other, code := redisbroker.LibraryWith(lib+"\n-- the next release\n", nil)
	if other == name || !strings.Contains(code, "function_name = '"+other+"_insert'") {
		t.Fatalf("another lib gave library %s (this one: %s)", other, name)
	}
	if err := admin.FunctionLoad(ctx, code).Err(); err != nil {
		t.Fatalf("load the other release's library: %v", err)
	}
	if err := insertJob(ctx, b, "q", "a"); err != nil {
		t.Fatalf("insert beside the other release's library: %v", err)
	}
	libs := libraries(t, admin)
	if len(libs) != 2 || len(libs[name]) != n || len(libs[other]) != n {
		t.Fatalf("libraries: %v", libs)
	}
	// The other release's get reads the job this one wrote.
	reply, err := admin.FCall(ctx, other+"_get", []string{"acl:f:{q}:j:"}, "a", "").Slice()
	if err != nil || len(reply) == 0 || reply[0] != "a" {
		t.Fatalf("the other release's get: %v, %v", reply, err)
	}
}

// TestFunctionsUnavailableRunScripts: a server whose broker user may not
// call or load functions, or that has no FCALL, gets the same scripts with
// EVALSHA, and the broker works; an ACL refusal of a key is the call's
// error, not a reason to drop Functions.
func TestFunctionsUnavailableRunScripts(t *testing.T) {
	ctx := context.Background()
	user := func(acl string) redistest.Options {
		return redistest.Options{ACL: []string{"worker on >pw " + brokerACL + acl}}
	}
	asUser := func(addr string) string { return "redis://worker:pw@" + addr }
	for _, c := range []struct {
		name string
		o    redistest.Options
		url  func(string) string
		fcal bool // the broker keeps Functions
	}{
		{"the documented ACL", user(""), asUser, true},
		{"no FCALL", user(" -fcall"), asUser, false},
		{"no FUNCTION LOAD", user(" -function|load"), asUser, false},
		{"FCALL renamed away", redistest.Options{Args: []string{"--rename-command", "FCALL", ""}}, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, _ := functionsBroker(t, c.o, c.url)
			if err := insertJob(ctx, b, "q", "a"); err != nil {
				t.Fatalf("insert: %v", err)
			}
			j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "a"})
			if err != nil || j.State != broker.StatePending {
				t.Fatalf("get: %+v, %v", j, err)
			}
			if got := redisbroker.UsesFunctions(b); got != c.fcal {
				t.Errorf("uses Functions: %v, want %v", got, c.fcal)
			}
		})
	}
	t.Run("a key refused", func(t *testing.T) {
		// The worker user may read the keys of prefix "ro" but not write
		// them; the format stamp is there, written by the default user.
		srv := redistest.StartWith(t, user(" %R~ro:*"))
		admin, err := redisbroker.Open("redis://"+srv.Addr, redisbroker.Config{Prefix: "ro"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Close() })
		if err := insertJob(ctx, admin, "q", "a"); err != nil {
			t.Fatal(err)
		}
		b, err := redisbroker.Open("redis://worker:pw@"+srv.Addr, redisbroker.Config{Prefix: "ro"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		if _, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "a"}); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Fatalf("get under a prefix the ACL lets the user only read: %v, want NOPERM", err)
		}
		if !redisbroker.UsesFunctions(b) {
			t.Error("a key's refusal made the broker drop Functions")
		}
	})
}

// TestConformanceScripts runs the conformance suite on a server without
// FCALL: the scripts as EVALSHA, as on Redis before 7.0.
func TestConformanceScripts(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Args: []string{"--rename-command", "FCALL", ""}})
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = client.Close() })
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		b, err := redisbroker.New(client, redisbroker.Config{Prefix: redistest.Prefix(t)})
		if err != nil {
			t.Fatalf("new broker: %v", err)
		}
		t.Cleanup(func() {
			if redisbroker.UsesFunctions(b) {
				t.Error("the broker kept Functions on a server without FCALL")
			}
			_ = b.Close()
		})
		return b
	})
}

// TestFunctionsOnAFullServer: above maxmemory, an insert is refused whole,
// while the scripts that move or remove jobs run (allow-oom): a worker
// completes its job, and retention frees memory.
func TestFunctionsOnAFullServer(t *testing.T) {
	ctx := context.Background()
	b, admin := functionsBroker(t, redistest.Options{}, nil)
	for i := range 3 {
		if err := insertJob(ctx, b, "q", fmt.Sprintf("j%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 2, LeaseDuration: time.Minute, WorkerID: "w"})
	if err != nil || len(jobs) != 2 {
		t.Fatalf("fetch: %d jobs, %v", len(jobs), err)
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.ConfigSet(context.Background(), "maxmemory", "0").Err() })

	if err := insertJob(ctx, b, "q", "late"); err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("insert on a full server: %v, want OOM", err)
	}
	errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{
		{JobLeaseParams: broker.JobLeaseParams{Queue: "q", ID: jobs[0].ID, Token: jobs[0].LeaseToken}}})
	if err != nil || errors.Join(errs...) != nil {
		t.Fatalf("complete on a full server: %v %v", err, errs)
	}
	if _, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "q", CompletedMaxCount: 1}); err != nil {
		t.Fatalf("maintain on a full server: %v", err)
	}
	if _, err := b.JobCancel(ctx, &broker.JobCancelParams{Queue: "q", ID: "j2"}); err != nil {
		t.Fatalf("cancel on a full server: %v", err)
	}
	if _, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "late"}); !errors.Is(err, broker.ErrNotFound) {
		t.Fatalf("the refused insert: %v, want ErrNotFound", err)
	}
	// Progress is a job's own JSON, of any size: it waits for room.
	err = b.JobProgress(ctx, &broker.JobLeaseParams{Queue: "q", ID: jobs[1].ID, Token: jobs[1].LeaseToken}, []byte(`{"done":1}`))
	if err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("progress on a full server: %v, want OOM", err)
	}
	if !redisbroker.UsesFunctions(b) {
		t.Fatal("the broker left Functions: the flags were not what ran")
	}
}

// TestFunctionsLoadRefusedForAWhile: a load of the library refused for a
// passing reason (here the server above maxmemory, after FUNCTION FLUSH)
// leaves the broker on Functions. The calls that find the library missing
// run their scripts, one load a second at most; once the server has room,
// the next call loads it.
func TestFunctionsLoadRefusedForAWhile(t *testing.T) {
	ctx := context.Background()
	b, admin := functionsBroker(t, redistest.Options{}, nil)
	if err := insertJob(ctx, b, "q", "j0"); err != nil {
		t.Fatal(err)
	}
	name, _ := redisbroker.Library()
	loads := func() int {
		t.Helper()
		info, err := admin.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(info, "\r\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_function|load:"); ok {
				for _, f := range strings.Split(rest, ",") {
					var v int
					if k, val, _ := strings.Cut(f, "="); (k == "calls" || k == "rejected_calls") && val != "" {
						if _, err := fmt.Sscan(val, &v); err == nil {
							n += v
						}
					}
				}
			}
		}
		return n
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.ConfigSet(context.Background(), "maxmemory", "0").Err() })
	if err := admin.FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before, start := loads(), time.Now()
	for i := range 3 {
		if _, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "j0"}); err != nil {
			t.Fatalf("read %d with the library refused: %v", i, err)
		}
	}
	if !redisbroker.UsesFunctions(b) {
		t.Fatal("a load refused for want of memory switched the broker to scripts for good")
	}
	// One load per loadRetry (a second) at most: one, unless this machine
	// took seconds over three reads.
	if n, most := loads()-before, 1+int(time.Since(start)/time.Second); n < 1 || n > most {
		t.Fatalf("%d loads for three calls in %v, want 1 to %d", n, time.Since(start), most)
	}
	if _, ok := libraries(t, admin)[name]; ok {
		t.Fatal("the library loaded on a full server")
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	// The next load comes a second after the refused one; the call that
	// makes it runs as a function again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "j0"}); err != nil {
			t.Fatalf("read after room was made: %v", err)
		}
		if _, ok := libraries(t, admin)[name]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the library was not loaded again within 10 s of the server having room")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !redisbroker.UsesFunctions(b) {
		t.Fatal("the broker left Functions")
	}
}
