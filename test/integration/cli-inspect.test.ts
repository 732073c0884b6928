/** `warren list`, `warren describe` and `warren serve --mock`, spawned as the bin against the real broker. */
import { describe, expect, it } from "vitest";
import { descriptorOf, loadContracts } from "../../codegen/cli/contracts.js";
import { openConnection } from "../helpers/broker.js";
import { greeterContract, greeterNames, oneLine, startWarren, tempSchemas, warren, warrenAll, warrenHere } from "../cli/run.js";

async function setup() {
  const names = greeterNames();
  const schemas = await tempSchemas({ "greeter.service.json": greeterContract(names) });
  return { names, schemas };
}

describe("warren list and describe", () => {
  it("list: services, methods, events from the contracts, and whether the queue exists with how many consumers", async () => {
    const { names, schemas } = await setup();
    const before = await warren(["list", "--json", "--schemas", schemas]);
    expect(before).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(before.stdout)).toEqual([
      {
        service: "Greeter",
        version: "1.2.0",
        description: "Says hello.",
        file: expect.stringMatching(/greeter\.service\.json$/),
        queue: names.queue,
        broker: { exists: false },
        methods: ["greet", "stamp", "strict"],
        exchange: { name: names.exchange, type: "topic" },
        events: [{ name: "greeted", routingKey: "greetings.{lang}" }],
      },
    ]);
    const { model } = await loadContracts({ schemas }, process.cwd());
    const conn = await openConnection();
    await conn.server().register(descriptorOf(model.services[0]!, model), { greet: () => ({ greeting: "hi" }), stamp: () => ({}), strict: () => "1" } as never);
    const [json, text] = await Promise.all([warren(["list", "--json", "--schemas", schemas]), warrenHere(["list", "--schemas", schemas])]);
    expect(JSON.parse(json!.stdout)[0].broker).toEqual({ exists: true, consumers: 1, messages: 0 });
    expect(text!.code).toBe(0);
    expect(text!.stdout).toContain(`Greeter 1.2.0  Says hello.\n  queue    ${names.queue}  (1 consumer, 0 waiting)\n  methods  greet, stamp, strict\n  events   greeted (greetings.{lang})  on topic exchange ${names.exchange}`);
    const offline = await warrenHere(["list", "--offline", "--schemas", schemas, "--url", "amqp://127.0.0.1:1"]);
    expect(offline).toMatchObject({ code: 0, stderr: "" });
    expect(offline.stdout).toContain(`queue    ${names.queue}\n`);
  });

  it("describe: a method's schemas, examples, errors, timeout, idempotency and queue; a service; an event", async () => {
    const { names, schemas } = await setup();
    const [method, service, event, json] = await Promise.all([
      warren(["describe", "Greeter.greet", "--schemas", schemas]),
      warrenHere(["describe", "Greeter", "--schemas", schemas]),
      warrenHere(["describe", "Greeter.greeted", "--schemas", schemas]),
      warrenHere(["describe", "Greeter.stamp", "--json", "--schemas", schemas]),
    ]);
    expect(method).toMatchObject({ code: 0, stderr: "" });
    for (const text of [
      "Greeter.greet  Greets someone by name.",
      `queue       ${names.queue} (request type "greet")`,
      "timeout     2000 ms",
      "idempotent  yes",
      "banned: That name is not greeted.",
      '"minLength": 1',
      "request examples\n    {\"name\":\"Ada\"}",
      "response examples\n    {\"greeting\":\"Hello, Ada\"}",
      "$defs\n    Greeting",
      "events of Greeter: greeted",
    ]) expect(method!.stdout).toContain(text);
    expect(service!.stdout).toContain(`queue       ${names.queue}`);
    expect(service!.stdout).toMatch(new RegExp(`events on the topic exchange ${names.exchange.replace(/\./g, "\\.")}\\n    greeted +routing key greetings\\.\\{lang\\}`));
    expect(event!.stdout).toContain(`exchange     ${names.exchange} (topic)`);
    expect(event!.stdout).toContain(`dead letters ${names.exchange}.greeted.<group>.dead`);
    expect(JSON.parse(json!.stdout)).toMatchObject({ method: "Greeter.stamp", timeoutMs: null, idempotent: false, queue: names.queue, errors: [], examples: { request: [], response: [] } });
    const wrong = await warrenHere(["describe", "Greeter.gretted", "--schemas", schemas]);
    expect(wrong.code).toBe(2);
    expect(oneLine(wrong)).toBe('warren: Greeter has no method or event "gretted"; did you mean "greeted"?');
  });
});

describe("warren serve --mock", () => {
  it("answers each method from its examples or generated data, validated by the runtime's server, until SIGTERM", async () => {
    const { names, schemas } = await setup();
    const server = await startWarren(["serve", "--mock", "Greeter", "--schemas", schemas], "Ctrl-C stops");
    expect(server.output()).toContain(`serving a mock of Greeter 1.2.0 on queue ${names.queue}: greet, stamp, strict`);
    const [greet, stamp, strict] = await warrenAll([
      { args: ["call", "Greeter.greet", '{"name":"Grace"}', "--schemas", schemas, "--compact"] },
      { args: ["call", "Greeter.stamp", "{}", "--schemas", schemas, "--compact"] },
      { args: ["call", "Greeter.strict", "{}", "--schemas", schemas] },
    ]);
    expect(greet).toMatchObject({ code: 0, stdout: '{"greeting":"Hello, Ada"}\n' });
    expect(stamp).toMatchObject({ code: 0, stdout: '{"n":4,"at":"2024-01-01T00:00:00Z","tags":["string","string"],"kind":"a"}\n' });
    // No sample meets the pattern: the server's response check refuses it, as it would a real handler's.
    expect(strict!.code).toBe(12);
    expect(oneLine(strict!)).toMatch(/^warren: Greeter\.strict: invalid_response \(invalid response, refused by the server\): \(root\) must match pattern/);
    const stopped = await server.stop("SIGTERM");
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toContain("warren: warning: Greeter.strict: no sample fits its response schema ((root) must match pattern");
    expect(stopped.stdout).toContain('Greeter.greet {"name":"Grace"} -> {"greeting":"Hello, Ada"}');
    expect(stopped.stdout).toContain("stopped on SIGTERM after 3 requests");
    const conn = await openConnection();
    const ch = await conn.channel();
    expect((await ch.checkQueue(names.queue)).consumerCount).toBe(0);
    await ch.close();
  });

  it("refuses a service it does not know, or none at all, in one line", async () => {
    const { schemas } = await setup();
    const [unknown, none] = await Promise.all([warrenHere(["serve", "--mock", "Greter", "--schemas", schemas]), warrenHere(["serve", "--mock", "--schemas", schemas])]);
    expect(unknown.code).toBe(2);
    expect(oneLine(unknown)).toMatch(/^warren: no service "Greter" in .*; did you mean "Greeter"\?$/);
    expect(none.code).toBe(2);
    expect(oneLine(none)).toBe("warren: which service? write: warren serve --mock Service");
  });
});
