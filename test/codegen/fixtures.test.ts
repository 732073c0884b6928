/**
 * Good fixtures: generate each into test/codegen/.tmp, snapshot every emitted
 * file, compile all of them (plus scaffolds and usage files) in ONE tsc run,
 * and load the descriptors to prove the bundled schemas work with Ajv.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { FIXTURES, ROOT, TMP, cli, listFiles, readTree, runtimeFor } from "./helpers.js";
import type { ServiceDescriptor } from "../../src/index.js";
import { checksFor, payloadCheck } from "../../src/core/validation.js";

/** The services, methods and events a fixture's contracts declare, read from its schema files. */
async function contractsOf(name: string): Promise<{ service: string; methods?: Record<string, unknown>; events?: Record<string, unknown> }[]> {
  const dir = path.join(FIXTURES, name, "schemas");
  const files = (await readdir(dir)).filter((f) => f.endsWith(".service.json"));
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(path.join(dir, f), "utf8"))));
}

function isDescriptor(value: unknown): value is ServiceDescriptor {
  return typeof value === "object" && value !== null && typeof (value as { name?: unknown }).name === "string" && typeof (value as { methods?: unknown }).methods === "object";
}

const GOOD = ["empty-service", "keyword-method-names", "cross-file-ref", "recursive-type", "hostile-text", "exact-types", "pure-ref-alias", "events-exchange-kinds"];
const BASE = path.join(TMP, "fixtures");
const outOf = (name: string) => path.join(BASE, name, "generated");
const EVIL = 'Closes */ a comment, `backticks`, "quotes", \'single\', ${injected}, \\ backslash, \u2028 line sep, \u2029 para sep,\nnewline */ console.log("pwned") /*';

/** Usage files compiled with the outputs: they must type-check (and their @ts-expect-error lines must fail). */
const USAGE: Record<string, string> = {
  "keyword-method-names": `
import type { RpcTransport } from "RUNTIME";
import { WordsClient, type WordsHandlers } from "./generated/index.js";
declare const t: RpcTransport;
const c = new WordsClient(t);
export async function use(): Promise<void> {
  const r = await c.delete({ id: "x" });
  r.deleted satisfies boolean | undefined;
  await c.new({});
  (await c.default({})) satisfies string | null;
  (await c.class({ word: "run" })) satisfies "noun" | "verb" | "other";
  (await c.import(["a"])) satisfies number;
  // @ts-expect-error id is required
  await c.delete({});
}
export const h: WordsHandlers = {
  delete: () => ({ deleted: true }),
  new: () => ({ id: "1" }),
  default: () => null,
  class: () => "noun",
  import: (names) => names.length,
};
`,
  "exact-types": `
import type { ShapesTypes } from "./generated/index.js";
type R = ShapesTypes.DescribeRequest;
export const ok: R = { shape: { kind: "circle", radius: 1 }, color: "red", label: null, id: 3, version: 2, extra: { a: 1 }, anything: { b: "c" }, meta: { nested: { deep: true } } };
// @ts-expect-error color outside the enum
export const badColor: R = { shape: { kind: "square", side: 1 }, color: "pink" };
// @ts-expect-error no index signature: extra properties are not allowed
export const extra: R = { shape: { kind: "square", side: 1 }, color: "red", other: 1 };
// @ts-expect-error nested required field missing
export const nested: R = { shape: { kind: "square", side: 1 }, color: "red", meta: { nested: {} } };
// @ts-expect-error extra values must be numbers
export const extraValues: R = { shape: { kind: "square", side: 1 }, color: "red", extra: { a: "x" } };
import type { RpcTransport } from "RUNTIME";
import { ShapesClient } from "./generated/index.js";
declare const t: RpcTransport;
export async function ping(): Promise<void> {
  const c = new ShapesClient(t);
  const r = await c.ping({});
  r.empty satisfies Record<string, never>;
  // @ts-expect-error an empty request is an empty object, not a string
  await c.ping("hello");
  // @ts-expect-error not an array
  await c.ping([]);
  // @ts-expect-error no property is allowed
  await c.ping({ extra: 1 });
  // @ts-expect-error not null
  await c.ping(null);
}
`,
  "events-exchange-kinds": `
import type { EventTransport } from "RUNTIME";
import { AlertsPublisher, AuditSubscriber, Tracking, TrackingPublisher, TrackingSubscriber } from "./generated/index.js";
declare const t: EventTransport;
export async function use(): Promise<void> {
  await new AlertsPublisher(t).publishAlertRaised({ level: "page", text: "disk full" });
  // @ts-expect-error level outside the enum
  await new AlertsPublisher(t).publishAlertRaised({ level: "panic", text: "x" });
  // @ts-expect-error hub is an integer
  await new TrackingPublisher(t).publishMoved({ parcel: "p", country: "de", hub: "x" });
  const sub = await new TrackingSubscriber(t).onMoved(
    (p, ctx) => {
      p.hub satisfies number;
      ctx.attempt satisfies number;
      ctx.routingKey satisfies string;
    },
    { group: "billing", bindingKey: "parcels.de.#" },
  );
  sub.queue satisfies string;
  await new AuditSubscriber(t).onLogin(({ user }) => {
    user satisfies string;
  });
  Tracking.exchange.type satisfies "topic" | "direct" | "fanout";
  // @ts-expect-error unknown subscribe option
  await new AuditSubscriber(t).onLogout(() => {}, { grup: "x" });
  // @ts-expect-error the subscriber has no publish methods
  new AuditSubscriber(t).publishLogin({ user: "u" });
}
`,
  "recursive-type": `
import type { TreeTypes } from "./generated/index.js";
export const t: TreeTypes.Node = { value: 1, children: [{ value: 2, children: [] }] };
export const e: TreeTypes.ParseResponse = { items: [1, "a", { items: [] }] };
`,
};

afterAll(() => rm(BASE, { recursive: true, force: true }));

beforeAll(async () => {
  await rm(BASE, { recursive: true, force: true });
  for (const name of GOOD) {
    const out = outOf(name);
    const scaffolds = (await contractsOf(name)).filter((c) => Object.keys(c.methods ?? {}).length > 0).flatMap((c) => ["--scaffold", c.service]);
    const r = await cli(["--schemas", path.join(FIXTURES, name, "schemas"), "--out", out, "--runtime", runtimeFor(out), "--scaffold-dir", path.join(BASE, name, "impl"), ...scaffolds]);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    const usage = USAGE[name];
    if (usage) await writeFile(path.join(BASE, name, "usage.ts"), usage.replace("RUNTIME", path.relative(path.join(BASE, name), path.join(ROOT, "src/index.js")).split(path.sep).join("/")));
  }
}, 30_000);

describe.each(GOOD)("fixture %s", (name) => {
  test("matches the committed snapshots", async () => {
    const files = await readTree(outOf(name));
    expect(files.size).toBeGreaterThan(0);
    for (const [rel, text] of files) {
      await expect(text).toMatchFileSnapshot(`__snapshots__/${name}/${rel}.snap`);
    }
  });

  test("every file starts with the header and is deterministic", async () => {
    const first = await readTree(outOf(name));
    const again = path.join(BASE, name, "again");
    const r = await cli(["--schemas", path.join(FIXTURES, name, "schemas"), "--out", again, "--runtime", runtimeFor(outOf(name))]);
    expect(r.code).toBe(0);
    expect(await readTree(again)).toEqual(first);
    for (const [rel, text] of first) {
      expect(text, rel).toMatch(/^\/\/ @generated by warren codegen from schemas\/[^\n]*\. DO NOT EDIT\.\n/);
      expect(text, rel).not.toMatch(/from "amqplib|from "ajv|\btry \{|setTimeout|JSON\.parse|"rpc\." \+|`rpc\.\$\{/);
    }
  });

  test("descriptors load, and the runtime compiles every method's and event's schemas", async () => {
    const index = (await import(path.join(outOf(name), "index.ts"))) as Record<string, unknown>;
    const descriptors = Object.values(index).filter((v): v is ServiceDescriptor => isDescriptor(v));
    const contracts = await contractsOf(name);
    expect(descriptors.map((d) => d.name).sort()).toEqual(contracts.map((c) => c.service).sort());
    for (const descriptor of descriptors) {
      const contract = contracts.find((c) => c.service === descriptor.name)!;
      expect(Object.values(descriptor.methods).map((m) => m.name).sort()).toEqual(Object.keys(contract.methods ?? {}).sort());
      expect(Object.values(descriptor.events ?? {}).map((e) => e.name).sort()).toEqual(Object.keys(contract.events ?? {}).sort());
      for (const method of Object.values(descriptor.methods)) {
        const checks = checksFor(method); // the runtime's own Ajv set-up: throws when a schema does not compile
        expect([...checks.errors.keys()].sort()).toEqual(Object.keys(method.errors).sort());
        // A compiled check answers (undefined or a list of issues) rather than throwing.
        expect(() => checks.request(Symbol("not json"))).not.toThrow();
      }
      for (const event of Object.values(descriptor.events ?? {})) expect(() => payloadCheck(event)(Symbol("not json"))).not.toThrow();
    }
  });
});

test("one tsc run compiles every fixture's output, scaffolds, usage files and the type-level tests", async () => {
  const tsconfig = {
    extends: path.join(ROOT, "tsconfig.json"),
    compilerOptions: { noEmit: true, noUnusedLocals: true, noUnusedParameters: true, exactOptionalPropertyTypes: true },
    include: [`${BASE}/**/*.ts`, path.join(ROOT, "test/codegen/typecheck/*.ts")],
    exclude: [],
  };
  const file = path.join(BASE, "tsconfig.json");
  await writeFile(file, JSON.stringify(tsconfig, null, 2));
  const tsc = path.join(ROOT, "node_modules/.bin/tsc");
  const result = await promisify(execFile)(tsc, ["-p", file], { cwd: ROOT }).then(
    () => "",
    (error: { stdout?: string }) => error.stdout ?? String(error),
  );
  // Every error counts, the runtime's included: generated code and src/ must compile under the strictest options users may turn on.
  expect(result.trim()).toBe("");
}, 60_000);

describe("hostile text", () => {
  test("survives intact in strings and escaped in JSDoc", async () => {
    const { Hostile } = await import(path.join(outOf("hostile-text"), "hostile/descriptor.ts"));
    expect(Hostile.description).toBe(EVIL);
    expect(Hostile.methods.echo.description).toBe(EVIL);
    expect(Hostile.methods.echo.errors.bad_text.description).toBe(EVIL);
    expect(Hostile.methods.echo.request.properties.choice.enum[0]).toBe(EVIL);
    expect(Object.keys(Hostile.methods.echo.request.properties)).toContain('weird key */ "`${x}`');
    const types = await readFile(path.join(outOf("hostile-text"), "hostile/types.ts"), "utf8");
    expect(types).toContain('Closes *\\/ a comment, `backticks`, "quotes", \'single\', ${injected}, \\ backslash,');
    expect(types).not.toMatch(/[\u2028\u2029]/);
  });
});

describe("scaffold", () => {
  test("implements the handlers interface and throws unimplemented", async () => {
    const text = await readFile(path.join(BASE, "keyword-method-names/impl/words.ts"), "utf8");
    expect(text).toContain('throw new RpcError("unimplemented", "Words.delete is not implemented");');
    const { wordsHandlers } = await import(path.join(BASE, "keyword-method-names/impl/words.ts"));
    expect(() => wordsHandlers.new({}, {})).toThrow(expect.objectContaining({ code: "unimplemented", message: "Words.new is not implemented" }));
  });

  test("never overwrites an existing file", async () => {
    const dir = path.join(BASE, "scaffold-keep");
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "words.ts"), "// mine\n");
    const out = outOf("keyword-method-names");
    const r = await cli(["--schemas", path.join(FIXTURES, "keyword-method-names/schemas"), "--out", out, "--runtime", runtimeFor(out), "--scaffold-dir", dir, "--scaffold", "Words"]);
    expect(r.code).toBe(0);
    expect(r.out.at(-1)).toMatch(/^scaffold {2}.*scaffold-keep\/words\.ts exists; left as it is$/);
    expect(await readFile(path.join(dir, "words.ts"), "utf8")).toBe("// mine\n");
  });

  test("a contract without methods gets no client, handlers or serve function, and nothing to scaffold", async () => {
    const files = await listFiles(outOf("events-exchange-kinds"));
    expect(files.filter((f) => f.startsWith("alerts/"))).toEqual(["alerts/descriptor.ts", "alerts/events.ts", "alerts/index.ts", "alerts/types.ts"]);
    expect(await listFiles(outOf("empty-service"))).not.toContain("empty/client.ts");
    const r = await cli(["--schemas", path.join(FIXTURES, "events-exchange-kinds/schemas"), "--out", path.join(BASE, "no-methods"), "--runtime", "warren", "--scaffold", "Alerts"]);
    expect(r.code).toBe(2);
    expect(r.err).toEqual(["warren-codegen: --scaffold: Alerts declares no methods, so there is no handler to implement (its events are handled with AlertsSubscriber)"]);
  });

  test("writes only the services it names, and refuses a name that is not a service", async () => {
    const dir = path.join(BASE, "scaffold-one");
    const out = path.join(BASE, "scaffold-one-out");
    const schemas = path.join(FIXTURES, "events-exchange-kinds/schemas");
    const contracts = await contractsOf("events-exchange-kinds");
    expect(contracts.length).toBeGreaterThan(1);
    const services = contracts.filter((c) => Object.keys(c.methods ?? {}).length > 0).map((c) => c.service);
    const r = await cli(["--schemas", schemas, "--out", out, "--runtime", runtimeFor(out), "--scaffold-dir", dir, "--scaffold", services[0]!]);
    expect(r.code).toBe(0);
    expect(await listFiles(dir)).toEqual([`${services[0]!.toLowerCase()}.ts`]);
    const typo = await cli(["--schemas", schemas, "--out", out, "--runtime", runtimeFor(out), "--scaffold-dir", dir, "--scaffold", `${services[0]!}x`]);
    expect(typo.code).toBe(2);
    expect(typo.err).toEqual([`warren-codegen: --scaffold: no service named "${services[0]!}x"; did you mean "${services[0]!}"?`]);
    const dirGiven = await cli(["--schemas", schemas, "--out", out, "--scaffold", "src/services"]);
    expect(dirGiven.err[0]).toContain("--scaffold takes a service name");
  });
});
