/**
 * The runtime's layers, read off the import statements of src/: arrows run one
 * way (core <- amqp <- rpc, events <- connection.ts, index.ts, testing/), there is no
 * import cycle, and only amqp/ imports amqplib (only core/ imports ajv). testing/
 * (`warren/testing`) is a top of its own beside connection.ts and index.ts: it runs
 * rpc/ and events/ on an in-memory broker behind the channel-source seam, and
 * nothing in src/ imports it.
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const SRC = path.resolve(import.meta.dirname, "../../src");
const RANK: Record<string, number> = { core: 0, amqp: 1, rpc: 2, events: 2, otel: 2.5, redis: 2.5, ".": 3, testing: 3 };

/** Every module of src/ (path relative to src/) with what it imports: relative modules and packages. */
function modules(): Map<string, { local: string[]; packages: string[] }> {
  const out = new Map<string, { local: string[]; packages: string[] }>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.name.endsWith(".ts")) {
        const text = readFileSync(file, "utf8");
        const specifiers = [...text.matchAll(/^(?:import|export)[^;]*?from "([^"]+)"/gms)].map((m) => m[1]!);
        out.set(path.relative(SRC, file), {
          local: specifiers.filter((s) => s.startsWith(".")).map((s) => path.relative(SRC, path.resolve(path.dirname(file), s)).replace(/\.js$/, ".ts")),
          packages: specifiers.filter((s) => !s.startsWith(".") && !s.startsWith("node:")),
        });
      }
    }
  };
  walk(SRC);
  return out;
}

const layerOf = (module: string) => (module.includes("/") ? module.split("/")[0]! : ".");

describe("src/ layers", () => {
  const graph = modules();

  it("reads the whole runtime", () => {
    expect(graph.size).toBeGreaterThan(25);
    expect([...graph.keys()]).toContain("amqp/channel-source.ts");
  });

  it("knows the layer of every module", () => {
    expect([...graph.keys()].filter((module) => RANK[layerOf(module)] === undefined)).toEqual([]);
    expect([...graph.keys()]).toContain("testing/index.ts");
  });

  it("imports only downwards: core <- amqp <- rpc, events <- the top files and testing/; rpc and events never import each other, nor the top files testing/", () => {
    const wrong: string[] = [];
    for (const [module, { local }] of graph) {
      for (const dep of local) {
        const [from, to] = [layerOf(module), layerOf(dep)];
        if (!(to in RANK) || RANK[to]! > RANK[from]! || (from !== to && RANK[to] === RANK[from])) wrong.push(`${module} -> ${dep}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("rpc/ and events/ reach AMQP only through the channel-source seam and the amqp/ helpers built on it, never the Connection or amqplib's adapter", () => {
    const wrong: string[] = [];
    for (const [module, { local }] of graph) {
      if (!["rpc", "events"].includes(layerOf(module))) continue;
      for (const dep of local) if (["amqp/connection.ts", "amqp/channel.ts", "amqp/internals.ts"].includes(dep)) wrong.push(`${module} -> ${dep}`);
    }
    expect(wrong).toEqual([]);
  });

  it("testing/ reaches AMQP only through the channel-source seam, as rpc/ and events/ do, and only testing/ imports testing/", () => {
    const wrong: string[] = [];
    for (const [module, { local, packages }] of graph) {
      const inTesting = layerOf(module) === "testing";
      for (const dep of local) {
        if (inTesting && layerOf(dep) === "amqp" && dep !== "amqp/channel-source.ts") wrong.push(`${module} -> ${dep}`);
        if (!inTesting && layerOf(dep) === "testing") wrong.push(`${module} -> ${dep}`);
      }
      if (inTesting) for (const pkg of packages) wrong.push(`${module} imports ${pkg}`);
    }
    expect(wrong).toEqual([]);
  });

  it("has no import cycle", () => {
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const stack: string[] = [];
    const visit = (module: string) => {
      state.set(module, "open");
      stack.push(module);
      for (const dep of graph.get(module)?.local ?? []) {
        if (state.get(dep) === "open") cycles.push([...stack.slice(stack.indexOf(dep)), dep].join(" -> "));
        else if (!state.has(dep)) visit(dep);
      }
      stack.pop();
      state.set(module, "done");
    };
    for (const module of graph.keys()) if (!state.has(module)) visit(module);
    expect(cycles).toEqual([]);
  });

  it("imports amqplib only under amqp/, and ajv only under core/", () => {
    const wrong: string[] = [];
    for (const [module, { packages }] of graph) {
      for (const pkg of packages) {
        if (pkg.startsWith("amqplib") && layerOf(module) !== "amqp") wrong.push(`${module} imports ${pkg}`);
        if (pkg.startsWith("ajv") && layerOf(module) !== "core") wrong.push(`${module} imports ${pkg}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
