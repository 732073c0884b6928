/**
 * The emit cache of watch mode: a service is printed again only when its
 * contract or a shared type it uses changed, and what comes out of the cache
 * is byte for byte what a cold run prints.
 */
import { cp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeEach, expect, test } from "vitest";
import { createEmitCache } from "../../codegen/emit.js";
import { generate } from "../../codegen/generate.js";
import { ROOT, TMP } from "./helpers.js";

const WORK = path.join(TMP, "cache");
const schemas = path.join(WORK, "schemas");
const run = (cache = createEmitCache()) => generate({ schemasDir: schemas, cwd: WORK, runtime: "warren" }, cache);

async function edit(file: string, change: (doc: Record<string, unknown>) => void): Promise<void> {
  const doc = JSON.parse(await readFile(path.join(schemas, file), "utf8")) as Record<string, unknown>;
  change(doc);
  await writeFile(path.join(schemas, file), JSON.stringify(doc, null, 2));
}

beforeEach(async () => {
  await rm(WORK, { recursive: true, force: true });
  await mkdir(WORK, { recursive: true });
  await cp(path.join(ROOT, "schemas"), schemas, { recursive: true, filter: (src) => !src.endsWith("bench.service.json") });
});
afterAll(() => rm(WORK, { recursive: true, force: true }));

test("re-emits only the changed service, and the result equals a cold run", async () => {
  const cache = createEmitCache();
  const first = await run(cache);
  expect(first.emitted).toEqual(["Calculator", "Fibonacci", "Orders", "Points"]);

  const again = await run(cache);
  expect(again.emitted).toEqual([]);
  expect(again.plan).toEqual(first.plan);

  await edit("fibonacci.service.json", (doc) => (doc.description = "Computes Fibonacci numbers, edited."));
  const warm = await run(cache);
  expect(warm.emitted).toEqual(["Fibonacci"]);
  const cold = await run();
  expect([...warm.plan.entries()]).toEqual([...cold.plan.entries()]);
  expect(warm.plan.get("fibonacci/client.ts")).toContain("edited.");
});

test("a changed shared type re-emits exactly the services that use it", async () => {
  const cache = createEmitCache();
  await run(cache);
  await edit("common/geometry.json", (doc) => {
    const point = (doc.$defs as Record<string, { description?: string }>).Point!;
    point.description = "A point in the plane, edited.";
  });
  const warm = await run(cache);
  // Calculator and Points use Point; Fibonacci and Orders do not.
  expect(warm.emitted).toEqual(["Calculator", "Points"]);
  expect(warm.plan.get("common/types.ts")).toContain("edited.");
  const cold = await run();
  expect([...warm.plan.entries()]).toEqual([...cold.plan.entries()]);
});

test("a removed service leaves the plan and the cache", async () => {
  const cache = createEmitCache();
  await run(cache);
  await rm(path.join(schemas, "orders.service.json"));
  const warm = await run(cache);
  expect(warm.emitted).toEqual([]);
  expect([...warm.plan.keys()].filter((k) => k.startsWith("orders/"))).toEqual([]);
  expect([...cache.services.keys()]).not.toContain("orders.service.json");
  expect([...warm.plan.entries()]).toEqual([...(await run()).plan.entries()]);
});
