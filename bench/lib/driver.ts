/**
 * Closed-loop load: `concurrency` workers, each issuing its next call as soon
 * as the previous one is answered. Warm-up first, then a fixed measurement
 * window. Throughput counts every reply received inside the window; latency
 * samples only calls both started and finished inside it.
 */
import { performance } from "node:perf_hooks";
import { Samples, percentile } from "./stats.js";

export interface CellResult {
  calls: number;
  seconds: number;
  callsPerSec: number;
  p50: number;
  p99: number;
}

/**
 * `call(i)` performs call number i and throws if its reply is wrong. Latency
 * samples go to `samples` (pass one buffer to several runs to merge them).
 */
export async function runCell(
  call: (i: number) => Promise<void>,
  concurrency: number,
  warmupMs: number,
  durationMs: number,
  onWindow?: (phase: "start" | "end") => void,
  samples = new Samples(),
): Promise<CellResult> {
  let recording = false;
  let stop = false;
  let windowStart = 0;
  let counter = 0;
  let completed = 0; // replies received inside the window, whenever their call started
  let failure: unknown;

  const worker = async () => {
    while (!stop) {
      const i = counter++;
      const t0 = performance.now();
      const recorded = recording;
      await call(i);
      if (recording && !stop) {
        completed++;
        if (recorded) samples.push(performance.now() - t0);
      }
    }
  };
  const workers = Array.from({ length: concurrency }, () =>
    worker().catch((err) => {
      failure ??= err;
      stop = true;
    }),
  );
  await sleep(warmupMs);
  onWindow?.("start");
  recording = true;
  windowStart = performance.now();
  await sleep(durationMs);
  stop = true;
  const seconds = (performance.now() - windowStart) / 1000;
  onWindow?.("end");
  // A call that never settles (e.g. the broker dropped the connection under a client without timeouts) must not hang the run.
  let watchdog: NodeJS.Timeout | undefined;
  const stalled = new Promise<void>((_, reject) => {
    watchdog = setTimeout(() => reject(new Error(`cell stalled: calls still unanswered 15 s after the window closed (broker restarted or connection lost?)`)), 15_000);
  });
  try {
    await Promise.race([Promise.all(workers), stalled]);
  } finally {
    clearTimeout(watchdog);
  }
  if (failure !== undefined) throw failure;
  const sorted = samples.sorted();
  return { calls: completed, seconds, callsPerSec: completed / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
