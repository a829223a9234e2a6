// Package httpproc processes jobs by calling the application's HTTP
// endpoints, and tells the application when jobs and workflow runs finish.
//
// # Endpoint processors
//
// New returns a worker.Processor bound to one endpoint (a URL, or a path
// on several instances behind a balancer, see Instances):
//
//	p, err := httpproc.New(httpproc.EndpointConfig{
//		URL:    "https://app.internal/jobs/invoice",
//		Secret: os.Getenv("WORKER_WEBHOOK_SECRET"), // whsec_…
//	})
//	…
//	manager.Register("invoice.processing", p)
//
// Each attempt is one POST of the job as JSON (see Request):
//
//	{"id":"…","type":"invoice.processing","queue":"invoices","tenantId":"t1",
//	 "companyId":"c1","attempt":1,"maxAttempts":3,"data":{…},"headers":{…}}
//
// signed as the Standard Webhooks specification says
// (https://www.standardwebhooks.com/): headers webhook-id,
// webhook-timestamp (Unix seconds) and webhook-signature ("v1," + base64
// HMAC-SHA256 of "id.timestamp.body" under the secret's bytes). The
// webhook-id derives from the job's queue and id, so it is the same on
// every attempt of a job: the application deduplicates by it. The request's
// deadline is the job's (its timeout, or the Manager's), or
// EndpointConfig.Timeout if shorter.
//
// The answer decides the outcome:
//   - 2xx completes the job; a JSON body becomes its result (bounded by
//     MaxResultBytes).
//   - 408, 429, 5xx and network errors (including the deadline) retry with
//     the Manager's backoff, or after Retry-After (seconds or an HTTP date)
//     when the answer has one.
//   - Any other status fails the job without retry (worker.NoRetry).
//   - A JSON error body {"error":{"type":"ValidationError","message":…}}
//     names the seed's error class: the error is classified
//     (recovery.Classify), so a recovery.Policy applies its strategy (a 4xx
//     still fails at once, and is notified if the strategy says so).
//     Network errors are classified recovery.NetworkError.
//
// Payloads, secrets and answer bodies never appear in errors or logs: an
// error quotes the status and the error type only.
//
// # Completion callbacks
//
// NewCallbacks sends one signed POST (a Callback) to a URL of the
// application when a job completes, dies or is cancelled, and when a
// workflow run succeeds, fails or is cancelled:
//
//	cb, err := httpproc.NewCallbacks(b, httpproc.CallbackConfig{URL: "https://app.internal/hooks/worker", Secret: secret})
//	manager.Register("invoice.processing", cb.Wrap(p)) // jobs of this type get callbacks
//	cb.Attach(manager)                                  // delivers them
//	engine.Register(cb.Workflow(w))                     // runs of this workflow get callbacks
//
// Delivery is durable and at least once: each callback is a job of type
// CallbackType, in the queue of the job or run it is about, inserted in the
// same atomic commit that completes or kills the job, and retried with
// backoff until the application answers 2xx. Its webhook-id never changes,
// so the application deduplicates repeated deliveries by it. Cancelling
// happens outside the Manager: the admin API calls Callbacks.CancelJob and
// Callbacks.CancelRun, which cancel and insert the callback (Client.Cancel
// and Engine.Cancel alone send none). A run's callbacks are sent from its
// OnSuccess and OnError hooks, which are jobs too. Jobs that expire, or die
// by lease recovery with no attempts left, get no callback.
//
// # Verifying in Go
//
// A Go receiver checks each call before trusting its body:
//
//	body, _ := io.ReadAll(r.Body)
//	if err := httpproc.Verify(secret, r.Header, body, 5*time.Minute); err != nil {
//		http.Error(w, "bad signature", http.StatusUnauthorized)
//		return
//	}
//
// Verifier accepts several secrets while one is being rotated.
//
// # Verifying in TypeScript
//
// With the standardwebhooks npm package (verify the raw body, before any
// JSON parsing re-encodes it):
//
//	import { Webhook } from "standardwebhooks";
//
//	const wh = new Webhook(process.env.WORKER_WEBHOOK_SECRET!); // "whsec_…"
//	app.post("/jobs/invoice", express.raw({ type: "application/json" }), (req, res) => {
//	  let job;
//	  try {
//	    job = wh.verify(req.body.toString("utf8"), req.headers as Record<string, string>);
//	  } catch {
//	    return res.status(401).end();
//	  }
//	  // dedupe by req.headers["webhook-id"], process job.data, then:
//	  res.json({ invoiceId: "INV-1" }); // becomes the job's result
//	});
//
// With node:crypto alone (the package's tests run this very function
// under node):
//
//	import { createHmac, timingSafeEqual } from "node:crypto";
//
//	export function verifyWorkerCall(secret, headers, rawBody, toleranceSeconds = 300) {
//	  const id = headers["webhook-id"], ts = headers["webhook-timestamp"], sigs = headers["webhook-signature"];
//	  if (!id || !ts || !sigs) throw new Error("missing webhook headers");
//	  if (!/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > toleranceSeconds) {
//	    throw new Error("webhook timestamp outside tolerance");
//	  }
//	  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
//	  const expected = createHmac("sha256", key).update(`${id}.${ts}.${rawBody}`).digest();
//	  for (const s of sigs.split(" ")) {
//	    const [version, sig] = s.split(",");
//	    const got = Buffer.from(sig ?? "", "base64");
//	    if (version === "v1" && got.length === expected.length && timingSafeEqual(got, expected)) {
//	      return JSON.parse(rawBody);
//	    }
//	  }
//	  throw new Error("no matching webhook signature");
//	}
package httpproc
