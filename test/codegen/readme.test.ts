/**
 * The README's code compiles: every complete service contract among its JSON
 * blocks is generated with the real generator, and every TypeScript block is
 * type-checked (strict, as a module importing "warren") against that output
 * and this repository's runtime, in one tsc run. A snippet that drifts from
 * the API fails here.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, test } from "vitest";
import { ROOT, TMP, cli } from "./helpers.js";

const exec = promisify(execFile);
const DIR = path.join(TMP, "readme");
afterAll(() => rm(DIR, { recursive: true, force: true }));

/** A fenced block of a Markdown file: its language, 1-based first line and text (indentation removed). */
interface Block {
  readonly lang: string;
  readonly line: number;
  readonly text: string;
}

/** Fenced code blocks, including ones indented inside list items. */
export function codeBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.slice(Math.min(indent, lines[j]!.search(/\S|$/))));
    out.push({ lang: open[2]!, line: i + 1, text: body.join("\n") });
    i = j;
  }
  return out;
}

/** What the README's snippets use without defining: a connection, an order's items, a billing function, a token store. */
const GLOBALS = `
declare const conn: import("warren").Connection;
declare const items: { sku: string; quantity: number }[];
declare function bill(order: unknown): Promise<void>;
declare const tokens: { current(): Promise<string> };
declare function verify(token: string): boolean;
declare const tracerProvider: import("@opentelemetry/api").TracerProvider;
declare const meterProvider: import("@opentelemetry/api").MeterProvider;
`;

test("every TypeScript block of the README type-checks against code generated from its contracts", async () => {
  const readme = await readFile(path.join(ROOT, "README.md"), "utf8");
  const blocks = codeBlocks(readme);
  const contracts = blocks.filter((b) => b.lang === "json" && /^\s*\{/.test(b.text)).map((b) => JSON.parse(b.text) as { service?: string });
  const services = contracts.filter((c) => typeof c.service === "string");
  const snippets = blocks.filter((b) => b.lang === "ts");
  expect(services.map((s) => s.service)).toContain("Greeter");
  expect(snippets.length).toBeGreaterThanOrEqual(3);

  await rm(DIR, { recursive: true, force: true });
  await mkdir(path.join(DIR, "schemas"), { recursive: true });
  for (const s of services) await writeFile(path.join(DIR, "schemas", `${s.service!.toLowerCase()}.service.json`), JSON.stringify(s));
  // The events and testing snippets use the repository's Orders and Calculator contracts.
  await mkdir(path.join(DIR, "schemas/common"), { recursive: true });
  for (const file of ["orders.service.json", "calculator.service.json", "common/geometry.json"]) await copyFile(path.join(ROOT, "schemas", file), path.join(DIR, "schemas", file));
  const runtime = path.relative(path.join(DIR, "generated", "service"), path.join(ROOT, "src/index.js")).split(path.sep).join("/");
  // The README's testing example is a test in this repository too: the same bytes but for the import of warren/testing.
  const example = await readFile(path.join(ROOT, "test/examples/calculator.test.ts"), "utf8");
  expect(snippets.some((b) => `${b.text}\n` === example.replace('"../../src/testing/index.js"', '"warren/testing"'))).toBe(true);
  const generated = await cli(["--schemas", path.join(DIR, "schemas"), "--out", path.join(DIR, "generated"), "--runtime", runtime]);
  expect(generated.err).toEqual([]);

  // A snippet that imports ../../generated/ is a test file two levels down (test/examples/), like the one in this repository.
  const files = snippets.map((b) => `${b.text.includes('"../../generated/') ? "test/examples/" : ""}readme-line-${b.line}.ts`);
  await mkdir(path.join(DIR, "test/examples"), { recursive: true });
  await Promise.all(snippets.map((b, i) => writeFile(path.join(DIR, files[i]!), `${b.text}\nexport {};\n`)));
  await writeFile(path.join(DIR, "globals.d.ts"), GLOBALS);
  await writeFile(
    path.join(DIR, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ["node"],
        typeRoots: [path.join(ROOT, "node_modules/@types")],
        baseUrl: ".",
        paths: { warren: [path.join(ROOT, "src/index.ts")], "warren/testing": [path.join(ROOT, "src/testing/index.ts")], "warren/otel": [path.join(ROOT, "src/otel/index.ts")], "warren/redis": [path.join(ROOT, "src/redis/index.ts")] },
      },
      files: ["globals.d.ts", ...files],
    }),
  );
  const tsc = path.join(ROOT, "node_modules/typescript/bin/tsc");
  const result = await exec(process.execPath, [tsc, "-p", DIR], { cwd: DIR }).then(
    () => "",
    (err: { stdout?: string }) => err.stdout ?? String(err),
  );
  // Errors name the README line of the block: readme-line-<n>.ts(<line in block>,<col>).
  expect(result).toBe("");
}, 60_000);
