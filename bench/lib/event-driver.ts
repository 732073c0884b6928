/**
 * One slice of the events benchmark: `inFlight` publishers, each publishing
 * its next event as soon as the broker confirmed its previous one, for
 * `durationMs`; then the slice waits until the consumer has consumed every
 * event published (so nothing is left queued for the next slice). Events/s =
 * events published / (first publish .. last one consumed): an event counts
 * once it was published, confirmed and consumed.
 */
import { performance } from "node:perf_hooks";
import { sleep } from "./driver.js";

/** What one slice did. */
export interface SliceResult {
  /** Events published, confirmed and consumed in the slice. */
  events: number;
  /** From the first publish to the last event consumed. */
  seconds: number;
}

/**
 * Runs one slice. `publish(seq)` resolves once event `seq` is confirmed and
 * throws on any failure (which aborts the run); `consumed(total)` resolves once
 * the consumer has consumed events 0 .. total-1. `first` is the sequence
 * number to start from; `onWindow` samples CPU at the window's edges.
 */
export async function runEventSlice(
  publish: (seq: number) => Promise<void>,
  first: number,
  inFlight: number,
  durationMs: number,
  consumed: (total: number) => Promise<void>,
  onWindow?: (phase: "start" | "end") => void,
): Promise<SliceResult> {
  let next = first;
  let stop = false;
  let failure: unknown;
  const worker = async () => {
    while (!stop) await publish(next++);
  };
  onWindow?.("start");
  const t0 = performance.now();
  const workers = Array.from({ length: inFlight }, () =>
    worker().catch((err) => {
      failure ??= err;
      stop = true;
    }),
  );
  await sleep(durationMs);
  stop = true;
  let watchdog: NodeJS.Timeout | undefined;
  const stalled = new Promise<void>((_, reject) => {
    watchdog = setTimeout(() => reject(new Error(`slice stalled: events unconfirmed or unconsumed 30 s after publishing stopped`)), 30_000);
  });
  try {
    await Promise.race([Promise.all(workers), stalled]);
    if (failure !== undefined) throw failure;
    await Promise.race([consumed(next), stalled]);
  } finally {
    clearTimeout(watchdog);
  }
  const seconds = (performance.now() - t0) / 1000;
  onWindow?.("end");
  return { events: next - first, seconds };
}
