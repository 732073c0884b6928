/**
 * warren as another project uses it, step by step as the README's "Use warren
 * in your project" says: both packages are built and packed, installed from
 * their tarballs into a fresh project outside this repository, a contract is
 * written there, the generator's bin runs with no flags (the runtime import
 * defaults to "warren"), `tsc` checks everything with `skipLibCheck: false`,
 * and plain `node` serves the service and calls it over the broker.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AMQP_URL, deleteAfter, uniqueName } from "../helpers/broker.js";

const exec = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
let project: string;
let packs: string;

/** Runs `cmd` in the project; resolves with stdout/stderr and the exit code (never throws). */
async function run(cmd: string, args: string[], cwd = project, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(cmd, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : 1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(error) };
  }
}

async function ok(cmd: string, args: string[], cwd = project): Promise<string> {
  const r = await run(cmd, args, cwd);
  expect(r.code, `${cmd} ${args.join(" ")}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

async function du(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await du(p);
    else if (entry.isFile()) total += (await stat(p)).size;
  }
  return total;
}

const QUEUE = uniqueName("greeter");

beforeAll(async () => {
  packs = await mkdtemp(path.join(os.tmpdir(), "warren-packs-"));
  project = await mkdtemp(path.join(os.tmpdir(), "warren-project-"));
  // npm pack runs each package's prepack (its build).
  await ok("npm", ["pack", "--silent", "--pack-destination", packs], ROOT);
  await ok("npm", ["pack", "--silent", "--pack-destination", packs, "-w", "codegen"], ROOT);
}, 180_000);

afterAll(async () => {
  await rm(project, { recursive: true, force: true });
  await rm(packs, { recursive: true, force: true });
});

describe("a fresh project", () => {
  it("installs the runtime without the generator, and the generator as a dev dependency", async () => {
    const tarballs = (await readdir(packs)).sort();
    expect(tarballs).toEqual([expect.stringMatching(/^warren-0\.\d+\.\d+\.tgz$/), expect.stringMatching(/^warren-codegen-0\.\d+\.\d+\.tgz$/)]);
    await writeFile(path.join(project, "package.json"), JSON.stringify({ name: "shop", private: true, type: "module", scripts: { codegen: "warren-codegen" } }, null, 2));
    const [runtime, codegen] = tarballs.map((t) => path.join(packs, t));
    await ok("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", runtime!]);
    const runtimeOnly = await readdir(path.join(project, "node_modules"));
    expect(runtimeOnly).not.toContain("ts-morph");
    expect(runtimeOnly).not.toContain("json-schema-to-typescript");
    expect(runtimeOnly).not.toContain("prettier");
    const runtimeBytes = await du(path.join(project, "node_modules"));
    await ok("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--save-dev", codegen!, "typescript@~5.9", "@types/node@^20"]);
    const allBytes = await du(path.join(project, "node_modules"));
    console.log(`installed size: runtime ${(runtimeBytes / 1e6).toFixed(1)} MB; with the generator, typescript and @types/node ${(allBytes / 1e6).toFixed(1)} MB`);
    // The package ships what its README links to.
    for (const f of ["README.md", "LICENSE", "docs/PROTOCOL.md", "docs/SERVICE-FORMAT.md", "docs/EVOLUTION.md", "docs/FAILURES.md"]) {
      await expect(stat(path.join(project, "node_modules/warren", f))).resolves.toBeTruthy();
    }
    for (const f of ["LICENSE", "README.md", "service.schema.json", "warren.config.schema.json"]) {
      await expect(stat(path.join(project, "node_modules/warren-codegen", f))).resolves.toBeTruthy();
    }
  }, 180_000);

  it("generates from a contract with no flags, importing the runtime as \"warren\", and names its own script in hints", async () => {
    await mkdir(path.join(project, "schemas"));
    await writeFile(
      path.join(project, "schemas/greeter.service.json"),
      JSON.stringify({
        $schema: "../node_modules/warren-codegen/service.schema.json",
        service: "Greeter",
        version: "1.0.0",
        description: "Says hello.",
        queue: QUEUE,
        methods: {
          greet: {
            description: "Greets someone by name.",
            request: { type: "object", required: ["name"], additionalProperties: false, properties: { name: { type: "string", minLength: 1 } } },
            response: { type: "object", required: ["greeting"], additionalProperties: false, properties: { greeting: { type: "string" } } },
          },
        },
      }),
    );
    const version = await ok("npx", ["warren-codegen", "--version"]);
    expect(version.trim()).toMatch(/^warren-codegen \d+\.\d+\.\d+$/);
    // The same package's second bin, the command line, with its own dependencies (commander, amqplib).
    expect((await ok("npx", ["warren", "--version"])).trim()).toMatch(/^warren \d+\.\d+\.\d+$/);
    expect(await ok("npx", ["warren", "describe", "Greeter.greet"])).toContain("Greets someone by name.");
    await ok("npm", ["run", "--silent", "codegen"]);
    const descriptor = await readFile(path.join(project, "generated/greeter/descriptor.ts"), "utf8");
    expect(descriptor).toContain('from "warren"');
    await writeFile(path.join(project, "schemas/greeter.service.json"), (await readFile(path.join(project, "schemas/greeter.service.json"), "utf8")).replace("Says hello.", "Says hello!"));
    const stale = await run("npx", ["warren-codegen", "--check"]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain("run: npm run codegen");
    await ok("npm", ["run", "--silent", "codegen"]);
  }, 120_000);

  it("type-checks with skipLibCheck false, and serves and calls over the broker with plain node", async () => {
    await writeFile(
      path.join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, skipLibCheck: false, outDir: "dist", types: ["node"] },
        include: ["generated", "main.ts"],
      }),
    );
    await writeFile(
      path.join(project, "main.ts"),
      `import { connect, dedupe, memoryDedupeStore, type DedupeStore } from "warren";
import { redisDedupeStore, type RedisCommandClient } from "warren/redis";
import { GreeterClient, serveGreeter, type GreeterHandlers } from "./generated/greeter/index.js";

const handlers: GreeterHandlers = { greet: ({ name }) => ({ greeting: \`Hello, \${name}\` }) };
const shared = (client: RedisCommandClient): DedupeStore => redisDedupeStore({ client });
void shared;
const conn = await connect(process.env.AMQP_URL);
const server = conn.server({ interceptors: [dedupe({ store: memoryDedupeStore() })] });
await serveGreeter(server, handlers);
const greeter = new GreeterClient(await conn.client());
console.log(JSON.stringify(await greeter.greet({ name: "Ada" })));
await server.close();
await conn.close();
`,
    );
    await ok("npx", ["tsc", "-p", "."]);
    deleteAfter(QUEUE);
    const r = await run(process.execPath, ["dist/main.js"], project, { AMQP_URL });
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ greeting: "Hello, Ada" });
  }, 60_000);

  it("is ES modules, which a CommonJS project loads with require() (Node >= 20.19) or import()", async () => {
    const required = await run(process.execPath, ["-e", 'console.log(typeof require("warren").connect, typeof require("warren/testing"), typeof require("warren/redis").redisDedupeStore)']);
    expect(required.stdout.trim()).toBe("function object function");
    const imported = await run(process.execPath, ["-e", 'import("warren").then((w) => console.log(typeof w.connect))']);
    expect(imported.stdout.trim()).toBe("function");
  });
});
