/**
 * `warren call`, spawned as the built bin (node codegen/dist/codegen/warren.js)
 * against the real broker, with a Greeter served in this process by the
 * runtime's RpcServer.
 */
import { describe, expect, it } from "vitest";
import type { HandlerContext } from "../../src/index.js";
import { descriptorOf, loadContracts } from "../../codegen/cli/contracts.js";
import { CODE_EXIT, UNDECLARED_EXIT } from "../../codegen/cli/exit.js";
import { Code } from "../../src/core/codes.js";
import { openConnection, unreachableUrl } from "../helpers/broker.js";
import { greeterContract, greeterNames, oneLine, tempSchemas, warren, warrenAll, warrenHere, type Run } from "../cli/run.js";

async function setup() {
  const names = greeterNames();
  const schemas = await tempSchemas({ "greeter.service.json": greeterContract(names) });
  const { model } = await loadContracts({ schemas }, process.cwd());
  const Greeter = descriptorOf(model.services[0]!, model);
  return { names, schemas, Greeter };
}

/** Serves Greeter in this process; `seen` records each request and its headers. */
async function serve(Greeter: Awaited<ReturnType<typeof setup>>["Greeter"]) {
  const seen: Array<{ request: unknown; headers: Readonly<Record<string, unknown>> }> = [];
  const conn = await openConnection();
  const server = conn.server();
  const handlers = {
    greet(request: unknown, ctx: HandlerContext<{ code: "banned"; data: { name: string } }>) {
      const { name } = request as { name: string };
      seen.push({ request, headers: ctx.headers });
      if (name === "Voldemort") throw ctx.error("banned", { name });
      return { greeting: `Hello, ${name}` };
    },
    stamp: () => ({ n: 4, at: "2024-01-01T00:00:00Z", tags: ["ab", "cd"], kind: "a" }),
    strict: () => "12",
  };
  await server.register(Greeter, handlers as never);
  return seen;
}

describe("warren call", () => {
  it("prints the response as JSON, with headers sent, the request from an argument or stdin", async () => {
    const { schemas, Greeter } = await setup();
    const seen = await serve(Greeter);
    const [fromArg, fromStdin] = await Promise.all([
      warren(["call", "Greeter.greet", '{"name":"Ada"}', "--schemas", schemas, "--header", "traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "-H", "tenant=t1", "--timeout", "1500"]),
      warren(["call", "Greeter.greet", "--schemas", schemas, "--compact"], { stdin: '{ "name": "Bob" }\n' }),
    ]);
    expect(fromArg).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(fromArg.stdout)).toEqual({ greeting: "Hello, Ada" });
    expect(fromStdin).toMatchObject({ code: 0, stdout: '{"greeting":"Hello, Bob"}\n', stderr: "" });
    const ada = seen.find((s) => (s.request as { name: string }).name === "Ada")!;
    expect(ada.headers).toMatchObject({ tenant: "t1", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x-warren-contract-version": "1.2.0" });
  });

  it("a declared error: exit 10, one line with its code, message and data", async () => {
    const { schemas, Greeter } = await setup();
    await serve(Greeter);
    const run = await warren(["call", "Greeter.greet", '{"name":"Voldemort"}', "--schemas", schemas]);
    expect(run.code).toBe(10);
    expect(run.stdout).toBe("");
    expect(oneLine(run)).toBe('warren: Greeter.greet: banned (declared error): That name is not greeted. data: {"name":"Voldemort"}');
  });

  it("an error code the caller's contract does not declare (a newer server's): exit 19, saying so, with its message and data", async () => {
    const { names, schemas } = await setup();
    // The server runs a newer contract that added the error "quota" to greet; the caller's does not know it.
    const newer = greeterContract(names) as { version: string; methods: { greet: { errors: Record<string, unknown> } } };
    newer.version = "1.3.0";
    newer.methods.greet.errors.quota = { description: "Over quota.", data: { type: "object", properties: { limit: { type: "integer" } } } };
    const { model } = await loadContracts({ schemas: await tempSchemas({ "greeter.service.json": newer }) }, process.cwd());
    const conn = await openConnection();
    const greet = (_request: unknown, ctx: HandlerContext<{ code: "quota"; data: { limit: number } }>) => {
      throw ctx.error("quota", { limit: 3 });
    };
    await conn.server().register(descriptorOf(model.services[0]!, model), { greet, stamp: () => ({}), strict: () => "1" } as never);
    const run = await warrenHere(["call", "Greeter.greet", '{"name":"Ada"}', "--schemas", schemas]);
    expect(run.code).toBe(19);
    expect(oneLine(run)).toBe(`warren: Greeter.greet: quota (a code your contract does not declare for this method: a newer server's?): Over quota. data: {"limit":3}`);
  });

  it("every framework code a call can end with has a status of its own: 19 is left for codes no contract of the caller declares", () => {
    const statuses = Object.keys(Code).map((code) => CODE_EXIT[code]);
    expect(statuses.every((s) => s !== undefined && s !== UNDECLARED_EXIT && s >= 11)).toBe(true);
    expect(new Set(statuses).size).toBe(statuses.length);
  });

  it("an invalid request: exit 11 naming every issue's JSON pointer, and nothing is sent (not even a connection is needed)", async () => {
    const { schemas, Greeter } = await setup();
    const seen = await serve(Greeter);
    const [online, offline] = await Promise.all([
      warren(["call", "Greeter.greet", '{"times":0,"extra":true}', "--schemas", schemas]),
      warrenHere(["call", "Greeter.greet", '{"times":0,"extra":true}', "--schemas", schemas, "--url", unreachableUrl(1, "x")]),
    ]);
    for (const run of [online, offline]) {
      expect(run.code).toBe(11);
      expect(oneLine(run)).toBe("warren: Greeter.greet: invalid_request (invalid request, checked before sending, nothing was sent): /name is required; /extra is not allowed; /times must be >= 1");
    }
    expect(seen).toEqual([]);
  });

  it("no server: exit 21 at once, also for a queue nobody consumes; --wait-for-server waits: timeout, exit 20", async () => {
    const { names, schemas } = await setup();
    const noServer = await warren(["call", "Greeter.greet", '{"name":"Ada"}', "--schemas", schemas]);
    expect(noServer.code).toBe(21);
    expect(oneLine(noServer)).toMatch(/^warren: Greeter\.greet: .*does not exist.*\[no_server\]$/);
    const conn = await openConnection();
    const ch = await conn.channel();
    await ch.assertQueue(names.queue, { durable: true });
    await ch.close();
    const nobody = await warren(["call", "Greeter.greet", '{"name":"Ada"}', "--schemas", schemas, "--timeout", "30000"]);
    expect(nobody.code).toBe(21);
    expect(oneLine(nobody)).toMatch(/^warren: Greeter\.greet: .*exists but no server consumes it.*\[no_server\]$/);
    const timedOut = await warren(["call", "Greeter.greet", '{"name":"Ada"}', "--schemas", schemas, "--timeout", "300", "--wait-for-server"]);
    expect(timedOut.code).toBe(20);
    expect(oneLine(timedOut)).toMatch(/^warren: Greeter\.greet: .*\[timeout\]$/);
  });

  it("every mistake at the prompt: one line on stderr, a documented status, no stack", async () => {
    const { schemas } = await setup();
    const cases: Array<[string[], number, RegExp, string?]> = [
      [["call", "Greeter.greet", '{"name": "Ada",}'], 2, /^warren: request:1:16: invalid JSON: expected a property name/],
      [["call", "Greeter.greet"], 2, /^warren: stdin:1:1: invalid JSON/, "not json"],
      [["call", "Greeter.greet"], 2, /^warren: the request on stdin is empty/, ""],
      [["call", "Greter.greet", "{}"], 2, /^warren: no service "Greter" in .*; did you mean "Greeter"\?$/],
      [["call", "Greeter.gret", "{}"], 2, /^warren: Greeter has no method "gret"; did you mean "greet"\?$/],
      [["call", "Greeter", "{}"], 2, /^warren: "Greeter" names no method; write Service\.method/],
      [["call", "Greeter.greet", "{}", "--timout", "5"], 2, /^warren: unknown option '--timout'; did you mean --timeout\? \(see: warren call --help\)$/],
      [["call", "Greeter.greet", "{}", "--timeout", "soon"], 2, /^warren: --timeout must be a whole number of milliseconds/],
      [["call", "Greeter.greet", "{}", "--header", "x-warren-deadline=1"], 2, /^warren: --header x-warren-deadline: names starting with x-warren- are reserved/],
      [["call", "Greeter.greet", "{}", "--header", "novalue"], 2, /^warren: --header takes name=value/],
      [["calll"], 2, /^warren: unknown command 'calll'; did you mean call\? \(see: warren --help\)$/],
      [["call"], 2, /^warren: missing required argument 'Service.method' \(see: warren call --help\)$/],
      [["call", "Greeter.greet", '{"name":"Ada"}', "--url", unreachableUrl(1, "secret")], 4, /^warren: cannot connect to the broker: .*127\.0\.0\.1:1.*$/],
      [["list", "--url", unreachableUrl(1, "secret")], 4, /^warren: cannot connect to the broker: /],
      [["call", "Greeter.greet", '{"name":"Ada"}', "--url", "http://user:secret@x"], 2, /^warren: --url: broker URL http:\/\/user:\*\*\*@x.* must start with amqp:\/\/ or amqps:\/\//],
      [["describe", "Greeter.greet", "--config", "nowhere.json"], 3, /^warren: nowhere\.json: cannot read the config file \(no such file\)$/],
    ];
    const withSchemas = (args: string[]) => [...args, ...(args.length > 1 ? ["--schemas", schemas] : [])];
    // The whole table in this process (runWarren, what the bin runs), a sample of it through the bin.
    const check = (run: Run, [args, code, pattern]: (typeof cases)[number]) => {
      expect({ args, code: run.code, line: oneLine(run) }).toEqual({ args, code, line: expect.stringMatching(pattern) });
      expect(run.stderr).not.toContain("secret");
    };
    for (const c of cases) check(await warrenHere(withSchemas(c[0]), c[3]), c);
    const sample = [0, 10, 12].map((i) => cases[i]!);
    const spawned = await warrenAll(sample.map(([args, , , stdin]) => ({ args: withSchemas(args), ...(stdin === undefined ? {} : { stdin }) })));
    spawned.forEach((run, i) => check(run, sample[i]!));
    const missing = await warren(["call", "Greeter.greet", "{}", "--schemas", `${schemas}/nope`]);
    expect(missing.code).toBe(3);
    expect(oneLine(missing)).toMatch(/^warren: .*nope: cannot read the schemas directory \(no such directory\); create it, or name it with --schemas/);
  });
});
