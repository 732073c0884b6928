/**
 * Summarises a V8 .cpuprofile by self time: top functions, and totals per
 * origin (warren src/, generated/, amqplib, ajv, uuid, rabbitmq-client,
 * node internals, GC, idle, JSON builtins).
 *   npx tsx bench/lib/profile-summary.ts file.cpuprofile [top=25]
 */
import { readFile } from "node:fs/promises";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export function origin(url: string, fn: string): string {
  if (fn === "(idle)") return "idle";
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(program)") return "(program: V8/native, unattributed)";
  if (url.includes("/node_modules/amqplib/")) return "amqplib";
  if (url.includes("/node_modules/ajv")) return "ajv runtime";
  if (url.includes("/node_modules/uuid/")) return "uuid";
  if (url.includes("/node_modules/rabbitmq-client/")) return "rabbitmq-client";
  if (url.includes("/node_modules/tsx/") || url.includes("/node_modules/esbuild")) return "tsx loader";
  if (url.includes("/node_modules/")) return "other node_modules";
  if (url.includes("/src/")) return "warren src/";
  if (url.includes("/generated/")) return "generated/";
  if (url.includes("/bench/")) return "bench harness";
  if (url.startsWith("node:")) return "node internals";
  if (url === "" && /^(parse|stringify)$/.test(fn)) return "JSON builtins";
  if (url === "") return "native/builtins";
  return "other";
}

export async function summarise(file: string, top = 25): Promise<string> {
  const p = JSON.parse(await readFile(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = [...self.entries()].filter(([id]) => byId.get(id)!.callFrame.functionName === "(idle)").reduce((a, [, t]) => a + t, 0);
  const busy = total - idle;
  const byFn = new Map<string, { t: number; origin: string }>();
  const byOrigin = new Map<string, number>();
  for (const [id, t] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const o = origin(url, functionName);
    const key = `${functionName || "(anonymous)"} ${url.replace(/^.*\/(node_modules\/|src\/|generated\/|bench\/)/, "$1")}:${lineNumber + 1}`;
    const e = byFn.get(key) ?? { t: 0, origin: o };
    e.t += t;
    byFn.set(key, e);
    byOrigin.set(o, (byOrigin.get(o) ?? 0) + t);
  }
  const pct = (t: number) => `${((100 * t) / busy).toFixed(1)}%`;
  const out: string[] = [`${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (percentages of busy time)`, "", "By origin:"];
  for (const [o, t] of [...byOrigin].sort((a, b) => b[1] - a[1])) if (o !== "idle") out.push(`  ${pct(t).padStart(6)}  ${o}`);
  out.push("", `Top ${top} functions by self time:`);
  for (const [k, { t, origin: o }] of [...byFn].filter(([, v]) => v.origin !== "idle").sort((a, b) => b[1].t - a[1].t).slice(0, top)) {
    out.push(`  ${pct(t).padStart(6)}  ${o.padEnd(18)} ${k}`);
  }
  return out.join("\n");
}

if (process.argv[1]?.endsWith("profile-summary.ts")) {
  const args = process.argv.slice(2);
  const top = Number(args.find((a) => /^\d+$/.test(a)) ?? 25);
  for (const file of args.filter((a) => a.endsWith(".cpuprofile"))) console.log(await summarise(file, top));
}
