/**
 * Codegen speed: 50 services x 10 methods (plus a shared type), generated and
 * written into a temp dir. Budget: < 2 s for a full run, < 300 ms in watch
 * mode from saving one contract to its regenerated file on disk.
 *
 *   npx tsx bench/codegen.ts              one full run, as `warren-codegen` does it (CLI in-process)
 *   npx tsx bench/codegen.ts --distinct   the same, but no two services share a schema (no memo hits between them)
 *   npx tsx bench/codegen.ts --watch      watch mode: change one contract N times, time each until its client.ts changes
 *
 * The machine is usually shared: run it several times, interleaved, and compare medians; the
 * process's CPU time (printed beside the wall time) suffers less from other load.
 */
import { readFileSync, watch as fsWatch } from "node:fs";
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { runCli } from "../codegen/run.js";
import { watch } from "../codegen/watch.js";

const SERVICES = 50;
const METHODS = 10;
const { values: flags } = parseArgs({ options: { distinct: { type: "boolean", default: false }, watch: { type: "boolean", default: false }, changes: { type: "string", default: "9" } } });

/** One method; with `--distinct` its field names carry the service number, so every service's schemas differ. */
function method(i: number, s: number, marker = ""): object {
  const id = flags.distinct ? `id${s}` : "id";
  return {
    description: `Method ${i}: does something useful.${marker}`,
    request: {
      type: "object",
      required: [id, "values"],
      additionalProperties: false,
      properties: {
        [id]: { type: "string", description: `Identifier.${marker}` },
        values: { type: "array", items: { type: "number" }, minItems: 1 },
        mode: { enum: ["fast", "slow"] },
        at: { $ref: "common/shared.json#/$defs/Point" },
        note: { type: ["string", "null"] },
      },
    },
    response: { $ref: "#/$defs/Result" },
    errors: { not_found: { description: "No such id.", data: { type: "object", required: [id], properties: { [id]: { type: "string" } } } } },
    timeoutMs: 1000 + i,
    idempotent: i % 2 === 0,
  };
}

function contract(s: number, marker = ""): string {
  const methods = Object.fromEntries(Array.from({ length: METHODS }, (_, i) => [`method_${i}`, method(i, s, marker)]));
  const doc = {
    service: `Service${s}`,
    version: "1.0.0",
    description: `Benchmark service ${s}.`,
    methods,
    $defs: { Result: { type: "object", required: ["ok"], properties: { ok: { type: "boolean" }, at: { $ref: "common/shared.json#/$defs/Point" } } } },
  };
  return JSON.stringify(doc, null, 2);
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Saves one contract N times (waiting for each regeneration), timing from the write to the changed client.ts on disk. */
async function benchWatch(dir: string, schemas: string, out: string): Promise<void> {
  const lines: string[] = [];
  const watcher = watch({ schemasDir: schemas, outDir: out, runtime: "../../src/index.js", cwd: dir }, { out: (l) => lines.push(l), err: (l) => lines.push(l) });
  await watcher.ready;
  const first = lines.find((l) => l.startsWith("watch: generated"));
  if (first === undefined) throw new Error(lines.join("\n"));
  const target = path.join(out, "service7/client.ts");
  const latencies: number[] = [];
  const cpuMs: number[] = [];
  // Told of the rename that puts client.ts in place by fs.watch, so measuring costs the watcher (same process) no polling.
  let changed: () => void = () => undefined;
  const outWatcher = fsWatch(path.dirname(target), () => changed());
  try {
    for (let n = 1; n <= Number(flags.changes); n++) {
      const edited = `Edit ${n}.`;
      const done = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no regeneration after 10 s:\n${lines.join("\n")}`)), 10_000);
        changed = () => {
          if (readFileSync(target, "utf8").includes(edited)) {
            clearTimeout(timer);
            resolve();
          }
        };
      });
      const started = performance.now();
      const cpu = process.cpuUsage();
      await writeFile(path.join(schemas, "service7.service.json"), contract(7, ` ${edited}`));
      await done;
      latencies.push(performance.now() - started);
      const { user, system } = process.cpuUsage(cpu);
      cpuMs.push((user + system) / 1000);
      // Let the watcher finish this generation (its other files) before the next save.
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    outWatcher.close();
    await watcher.close();
  }
  const ms = latencies.map((l) => l.toFixed(0)).join(", ");
  console.log(`codegen --watch: ${SERVICES} services x ${METHODS} methods; one contract saved ${latencies.length} times -> its files regenerated in median ${median(latencies).toFixed(0)} ms (min ${Math.min(...latencies).toFixed(0)}, max ${Math.max(...latencies).toFixed(0)}; all: ${ms}); cpu median ${median(cpuMs).toFixed(0)} ms`);
  const regen = lines.filter((l) => l.startsWith("watch: regenerated"));
  console.log(`  watcher: ${first}; last: ${regen.at(-1) ?? "(none)"}`);
}

const dir = await mkdtemp(path.join(os.tmpdir(), "warren-bench-"));
try {
  const schemas = path.join(dir, "schemas");
  const out = path.join(dir, "generated");
  await mkdir(path.join(schemas, "common"), { recursive: true });
  await writeFile(path.join(schemas, "common/shared.json"), JSON.stringify({
    $defs: { Point: { type: "object", required: ["x", "y"], additionalProperties: false, properties: { x: { type: "number" }, y: { type: "number" } } } },
  }));
  for (let s = 0; s < SERVICES; s++) await writeFile(path.join(schemas, `service${s}.service.json`), contract(s));
  if (flags.watch) await benchWatch(dir, schemas, out);
  else {
    const started = performance.now();
    const cpu = process.cpuUsage();
    const lines: string[] = [];
    const code = await runCli(["--schemas", schemas, "--out", out, "--runtime", "../../src/index.js"], { cwd: dir, out: (l) => lines.push(l), err: (l) => lines.push(l) });
    const ms = performance.now() - started;
    const { user, system } = process.cpuUsage(cpu);
    if (code !== 0) throw new Error(lines.join("\n"));
    await stat(path.join(out, "index.ts"));
    console.log(`codegen${flags.distinct ? " --distinct" : ""}: ${SERVICES} services x ${METHODS} methods -> ${lines.length} services generated in ${(ms / 1000).toFixed(2)} s (cpu ${((user + system) / 1e6).toFixed(2)} s)`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
