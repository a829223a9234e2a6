package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/internal/cputime"
	"github.com/aibos/worker/internal/testbroker"
)

// BenchmarkAPIEnqueue measures enqueues through the API by parallel
// clients with the audit trail off and on (every enqueue one entry, the
// entries of concurrent requests committed together). cpu-µs/op is this
// process's CPU per enqueue (server, clients and, on SQLite, the store):
//
//	go test ./admin -run '^$' -bench APIEnqueue -cpu 8
func BenchmarkAPIEnqueue(b *testing.B) {
	for _, e := range testbroker.Engines {
		for _, on := range []bool{false, true} {
			name := e.Name + "/audit=off"
			if on {
				name = e.Name + "/audit=on"
			}
			b.Run(name, func(b *testing.B) {
				br := e.Open(b)
				var srv *apitest.Server
				if on {
					srv = startAuditedTB(b, br)
				} else {
					srv = apitest.Start(b, admin.Config{Broker: br})
				}
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
				defer client.CloseIdleConnections()
				b.ResetTimer()
				cpu, _ := cputime.Process()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, _ := http.NewRequest("POST", srv.URL+"/api/v1/queues/invoices/jobs", strings.NewReader(`{"type":"bench"}`))
						req.Header.Set("Authorization", "Bearer "+apitest.Operator)
						req.Header.Set("Content-Type", "application/json")
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						resp.Body.Close()
						if resp.StatusCode != http.StatusCreated {
							b.Errorf("enqueue: %d", resp.StatusCode)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enqueues/s")
				cpu1, _ := cputime.Process()
				b.ReportMetric(float64(cpu1-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
			})
		}
	}
}
