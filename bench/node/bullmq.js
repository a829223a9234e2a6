// bullmq.js drives BullMQ for bench/cmd/compare. It runs one workload and
// prints one JSON object on stdout:
//   node bullmq.js <workload> '<json args>'
// Workloads (args always carry host and port of the Redis to use):
//   enqueue  {n, conc}            one add() at a time from conc lanes -> {seconds}
//   bulk     {n, batch}           addBulk() in batches                -> {seconds}
//   process  {n, conc}            run n pre-enqueued no-op jobs       -> {seconds}
//   latency  {rate, seconds, conc} steady adds, worker running        -> {lags_ms: [...]}
//   delayed  {n, seconds, delay}  n delayed adds spread over seconds   -> {lags_ms: [...]}
// Everything uses BullMQ's defaults except the worker's concurrency.
'use strict';
const { Queue, Worker } = require('bullmq');

const QUEUE = 'bench';
const PAYLOAD = { invoice: 'INV-0001', amount: 1250 };
const now = () => performance.timeOrigin + performance.now(); // wall clock, ms, sub-ms
// Delayed jobs are timed by Date.now(), as BullMQ itself times them: the
// sub-ms clock above drifts from it by milliseconds, which would count
// on-time jobs as early.
const wall = () => Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const [workload, raw] = process.argv.slice(2);
  const a = JSON.parse(raw || '{}');
  const connection = { host: a.host, port: a.port, maxRetriesPerRequest: null };
  const queue = new Queue(QUEUE, { connection });
  await queue.waitUntilReady();
  let out;
  try {
    out = await run(workload, a, queue, connection);
  } finally {
    await queue.close();
  }
  // Exit only once the output is flushed: a pipe is written asynchronously.
  await new Promise((resolve) => process.stdout.write(JSON.stringify(out) + '\n', resolve));
}

async function run(workload, a, queue, connection) {
  switch (workload) {
    case 'enqueue': {
      const per = Math.ceil(a.n / a.conc);
      const start = now();
      await Promise.all(Array.from({ length: a.conc }, async (_, lane) => {
        for (let i = lane * per; i < Math.min(a.n, (lane + 1) * per); i++) {
          await queue.add('bench', PAYLOAD);
        }
      }));
      return { seconds: (now() - start) / 1000 };
    }
    case 'bulk': {
      const start = now();
      for (let i = 0; i < a.n; i += a.batch) {
        const jobs = [];
        for (let j = i; j < Math.min(a.n, i + a.batch); j++) jobs.push({ name: 'bench', data: PAYLOAD });
        await queue.addBulk(jobs);
      }
      return { seconds: (now() - start) / 1000 };
    }
    case 'process': {
      let done = 0;
      let finish;
      const finished = new Promise((r) => { finish = r; });
      const start = now();
      const worker = new Worker(QUEUE, async () => {}, { connection, concurrency: a.conc });
      worker.on('completed', () => { if (++done === a.n) finish(now()); });
      const end = await finished;
      await worker.close();
      return { seconds: (end - start) / 1000 };
    }
    case 'latency':
    case 'delayed': {
      const total = workload === 'latency' ? Math.round(a.rate * a.seconds) : a.n;
      const gap = (a.seconds * 1000) / total;
      const lags = [];
      let finish;
      const finished = new Promise((r) => { finish = r; });
      const clock = workload === 'delayed' ? wall : now;
      const worker = new Worker(QUEUE, async (job) => {
        lags.push(clock() - job.data.due);
        if (lags.length === total) finish();
      }, { connection, concurrency: a.conc || 10 });
      await worker.waitUntilReady();
      await sleep(500); // let the worker go idle first
      const t0 = now();
      const adds = [];
      for (let i = 0; i < total; i++) {
        const wait = t0 + i * gap - now();
        if (wait > 0) await sleep(wait);
        const t = clock();
        if (workload === 'latency') {
          adds.push(queue.add('bench', { ...PAYLOAD, due: t }));
        } else {
          adds.push(queue.add('bench', { ...PAYLOAD, due: t + a.delay }, { delay: a.delay }));
        }
      }
      await Promise.all(adds);
      const timeout = sleep(30000).then(() => 'timeout');
      const r = await Promise.race([finished, timeout]);
      await worker.close(true);
      return { lags_ms: lags, missing: total - lags.length, timeout: r === 'timeout' };
    }
    default:
      throw new Error(`unknown workload ${workload}`);
  }
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
