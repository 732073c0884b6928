/**
 * Request payloads of the benchmark and the checks every reply must pass.
 * A failed check throws, which aborts the run: a benchmark of wrong answers
 * is worthless.
 */
import type { Batch, Record as BenchRecord } from "../../generated/bench/types.js";

/** `{a, b}` with small integers; the reply must be `{sum: a + b}`. */
export function addRequest(i: number): { a: number; b: number } {
  return { a: i % 1000, b: (i * 7) % 1013 };
}

export function checkAdd(req: { a: number; b: number }, res: unknown): void {
  const sum = (res as { sum?: unknown } | null)?.sum;
  if (sum !== req.a + req.b) throw new Error(`wrong reply to add(${req.a}, ${req.b}): ${JSON.stringify(res)}`);
}

/** A batch of records whose JSON is about 4 KB. */
export function makeRecords(n = 30): BenchRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    id: i,
    name: `record-${i.toString().padStart(4, "0")}-${"x".repeat(40)}`,
    score: Math.round(i * 3.14159 * 1000) / 1000,
    active: i % 3 !== 0,
    tags: ["alpha", "beta", `t${i}`],
  }));
}

export const RECORDS = makeRecords();
export const ECHO_BYTES = Buffer.byteLength(JSON.stringify({ seq: 0, records: RECORDS }));

export function echoRequest(seq: number): Batch {
  return { seq, records: RECORDS };
}

/** Checks the echoed sequence number, the record count and the last record's fields. */
export function checkEcho(req: Batch, res: unknown): void {
  const r = res as Batch | null;
  const last = r?.records?.[r.records.length - 1];
  const want = req.records[req.records.length - 1]!;
  if (
    r?.seq !== req.seq ||
    r.records.length !== req.records.length ||
    last?.id !== want.id ||
    last.name !== want.name ||
    last.score !== want.score ||
    last.tags[2] !== want.tags[2]
  ) {
    throw new Error(`wrong reply to echo(seq ${req.seq}): seq ${String(r?.seq)}, ${String(r?.records?.length)} records`);
  }
}
