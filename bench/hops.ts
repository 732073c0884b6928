/**
 * Where a call's time goes at one call in flight, per process: runs the
 * one-in-flight cell of bench/run.ts once per implementation and repetition
 * (alternating), each run with bench/lib/hop-probe.ts loaded into the client
 * and server processes, and prints the median hop times (µs): socket read to
 * amqplib's dispatch (`in`), the implementation's own code (`own`), and
 * amqplib's send to the socket write (`out`). What a hop does not cover is the
 * broker and the kernel: `rest` = time per call − client hop − server hop.
 *
 *   npm run bench:hops [-- --reps 3 --impls baseline,warren --out bench/results/hops]
 *
 * The probe adds a few hrtime reads per hop: compare implementations, not
 * absolute numbers with `npm run bench`.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { median } from "./lib/stats.js";

const exec = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
function opt(name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
}
const reps = Number(opt("reps", "3"));
const impls = opt("impls", "baseline,warren").split(",");
const out = path.resolve(opt("out", "bench/results/hops"));

type Segment = { p50: number; mean: number };
interface Hop {
  role: "client" | "server";
  n: number;
  in: Segment;
  own: Segment;
  out: Segment;
  total: Segment;
}
interface Run {
  callsPerSec: number;
  client: Hop;
  server: Hop;
}

const dir = await mkdtemp(path.join(os.tmpdir(), "warren-hops-"));
const runs: Record<string, Run[]> = Object.fromEntries(impls.map((i) => [i, []]));
try {
  for (let rep = 0; rep < reps; rep++) {
    for (let k = 0; k < impls.length; k++) {
      const impl = impls[(k + rep) % impls.length]!;
      const hopsFile = path.join(dir, `${impl}-${rep}.jsonl`);
      const result = path.join(dir, `${impl}-${rep}`);
      await exec(process.execPath, [path.join(here, "run.js"), "--impls", impl, "--cells", "small-c1", "--reps", "1", "--jit-warmup", "1000", "--out", result], {
        env: { ...process.env, NODE_OPTIONS: `--import ${path.join(here, "lib/hop-probe.js")}`, WARREN_HOPS_OUT: hopsFile },
        maxBuffer: 16 * 1024 * 1024,
      });
      const hops = (await readFile(hopsFile, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Hop);
      // The busiest socket of each role is the one that carried the calls.
      const busiest = (role: Hop["role"]) => hops.filter((h) => h.role === role).sort((a, b) => b.n - a.n)[0];
      const client = busiest("client");
      const server = busiest("server");
      if (client === undefined || server === undefined) throw new Error(`${impl}: the probe recorded no hops`);
      const summary = JSON.parse(await readFile(`${result}.json`, "utf8")) as { summary: Record<string, { callsPerSec: number }>[] };
      const callsPerSec = summary.summary[0]![impl]!.callsPerSec;
      runs[impl]!.push({ callsPerSec, client, server });
      console.log(`rep ${rep + 1} ${impl.padEnd(10)} ${callsPerSec.toFixed(0)} calls/s  client hop ${client.total.p50} µs p50  server hop ${server.total.p50} µs p50`);
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

const f1 = (n: number) => n.toFixed(1);
const lines = [
  "# Where a call's time goes at one call in flight",
  "",
  `Command: \`npm run bench:hops -- ${args.join(" ")}\`  `.replace(/ -- `/, "`"),
  `${new Date().toISOString()}; Node ${process.version}; ${reps} runs per implementation, alternating; each run is \`npm run bench -- --cells small-c1 --reps 1\` with bench/lib/hop-probe.ts loaded into client and server.`,
  "",
  "µs per hop, medians over runs of each run's p50 (mean in brackets). A hop is one process's turn: socket read to amqplib's dispatch (in), the implementation's code (own; on the client it includes the benchmark driver), amqplib's send to the socket write (out). rest = 1/calls·s − both hops: broker, kernel and waiting.",
  "",
  "| implementation | calls/s | client in | own | out | hop | server in | own | out | hop | rest |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
];
for (const impl of impls) {
  const rs = runs[impl]!;
  const m = (pick: (r: Run) => number) => median(rs.map(pick));
  const cell = (role: "client" | "server", seg: "in" | "own" | "out" | "total") => `${f1(m((r) => r[role][seg].p50))} (${f1(m((r) => r[role][seg].mean))})`;
  const rest = m((r) => 1e6 / r.callsPerSec - r.client.total.mean - r.server.total.mean);
  lines.push(
    `| ${impl} | ${m((r) => r.callsPerSec).toFixed(0)} | ${cell("client", "in")} | ${cell("client", "own")} | ${cell("client", "out")} | ${cell("client", "total")} | ${cell("server", "in")} | ${cell("server", "own")} | ${cell("server", "out")} | ${cell("server", "total")} | ${f1(rest)} |`,
  );
}
const md = lines.join("\n") + "\n";
await writeFile(`${out}.md`, md);
console.log(`\n${md}\nwritten: ${path.relative(process.cwd(), out)}.md`);
