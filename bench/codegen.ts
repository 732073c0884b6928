/**
 * Codegen speed: 50 services x 10 methods (plus a shared type), generated and
 * written into a temp dir. Run: npx tsx bench/codegen.ts  (budget: < 10 s).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { runCli } from "../codegen/run.js";

const SERVICES = 50;
const METHODS = 10;

function method(i: number): object {
  return {
    description: `Method ${i}: does something useful.`,
    request: {
      type: "object",
      required: ["id", "values"],
      additionalProperties: false,
      properties: {
        id: { type: "string", description: "Identifier." },
        values: { type: "array", items: { type: "number" }, minItems: 1 },
        mode: { enum: ["fast", "slow"] },
        at: { $ref: "common/shared.json#/$defs/Point" },
        note: { type: ["string", "null"] },
      },
    },
    response: { $ref: "#/$defs/Result" },
    errors: { not_found: { description: "No such id.", data: { type: "object", required: ["id"], properties: { id: { type: "string" } } } } },
    timeoutMs: 1000 + i,
    idempotent: i % 2 === 0,
  };
}

const dir = await mkdtemp(path.join(os.tmpdir(), "warren-bench-"));
try {
  const schemas = path.join(dir, "schemas");
  await mkdir(path.join(schemas, "common"), { recursive: true });
  await writeFile(path.join(schemas, "common/shared.json"), JSON.stringify({
    $defs: { Point: { type: "object", required: ["x", "y"], additionalProperties: false, properties: { x: { type: "number" }, y: { type: "number" } } } },
  }));
  for (let s = 0; s < SERVICES; s++) {
    const methods = Object.fromEntries(Array.from({ length: METHODS }, (_, i) => [`method_${i}`, method(i)]));
    const doc = {
      service: `Service${s}`,
      version: "1.0.0",
      description: `Benchmark service ${s}.`,
      methods,
      $defs: { Result: { type: "object", required: ["ok"], properties: { ok: { type: "boolean" }, at: { $ref: "common/shared.json#/$defs/Point" } } } },
    };
    await writeFile(path.join(schemas, `service${s}.service.json`), JSON.stringify(doc, null, 2));
  }
  const started = performance.now();
  const lines: string[] = [];
  const code = await runCli(["--schemas", schemas, "--out", path.join(dir, "generated")], { cwd: dir, out: (l) => lines.push(l), err: (l) => lines.push(l) });
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(lines.join("\n"));
  console.log(`codegen: ${SERVICES} services x ${METHODS} methods -> ${lines.length} services generated in ${(ms / 1000).toFixed(2)} s`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
