/** `warren docs`: the AsyncAPI 3.0.0 document (checked by @asyncapi/parser) and the Markdown reference. */
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { Parser } from "@asyncapi/parser";
import { describe, expect, it } from "vitest";
import { onTeardown } from "../helpers/broker.js";
import { greeterContract, greeterNames, oneLine, tempSchemas, warrenAll, warrenHere } from "../cli/run.js";

/** Parses with @asyncapi/parser; returns the diagnostics that are errors or warnings, and the document. */
async function parse(text: string) {
  const { document, diagnostics } = await new Parser().parse(text);
  // Severity 0 is an error, 1 a warning; 2 (information, e.g. "3.1.0 exists") and 3 (hint) are advice.
  const problems = diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.code} ${d.message} at ${d.path.join("/")}`);
  return { document, problems };
}

describe("warren docs", () => {
  it("writes an AsyncAPI 3.0.0 document the AsyncAPI parser accepts without errors or warnings, and a Markdown reference", async () => {
    const names = greeterNames();
    const schemas = await tempSchemas({ "greeter.service.json": greeterContract(names) });
    const out = path.join(schemas, "..", `${path.basename(schemas)}-docs`);
    onTeardown(() => rm(out, { recursive: true, force: true }));
    const [run, repo] = await warrenAll([
      { args: ["docs", "--out", out, "--schemas", schemas, "--server", "amqp://guest:secret@broker.example:5672/prod"] },
      { args: ["docs"] }, // this repository's contracts, found through warren.config.json
    ]);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    expect(run!.stdout).toMatch(/asyncapi\.json +AsyncAPI 3\.0\.0, 1 service\n.*reference\.md +Markdown reference/);
    const text = await readFile(path.join(out, "asyncapi.json"), "utf8");
    expect(text).not.toContain("secret");
    const { document, problems } = await parse(text);
    expect(problems).toEqual([]);
    expect(document).toBeDefined();

    const doc = JSON.parse(text);
    expect(doc.asyncapi).toBe("3.0.0");
    expect(doc.servers.broker).toMatchObject({ host: "broker.example:5672", protocol: "amqp", pathname: "/prod" });
    // A method: send on the service queue's channel, with a reply to $message.header#/replyTo on the reply channel.
    const greet = doc.operations["call.Greeter.greet"];
    expect(greet).toMatchObject({
      action: "send",
      channel: { $ref: "#/channels/Greeter.requests" },
      reply: { address: { location: "$message.header#/replyTo" }, channel: { $ref: "#/channels/Greeter.replies" } },
      bindings: { amqp: { expiration: 2000, mandatory: true, bindingVersion: "0.3.0" } },
    });
    expect(greet.reply.messages.map((m: { $ref: string }) => m.$ref)).toEqual([
      "#/channels/Greeter.replies/messages/greet.result",
      "#/channels/Greeter.replies/messages/greet.error.banned",
      "#/channels/Greeter.replies/messages/error",
    ]);
    expect(doc.channels["Greeter.requests"]).toMatchObject({ address: names.queue, bindings: { amqp: { is: "queue", queue: { name: names.queue, durable: true, vhost: "prod" } } } });
    expect(doc.channels["Greeter.replies"].address).toBeNull();
    // A declared error reply is a message of its own, its data schema included.
    expect(doc.components.messages["Greeter.greet.error.banned"].payload).toMatchObject({ required: ["code", "message", "data"], properties: { code: { const: "banned" }, data: { required: ["name"] } } });
    expect(doc.components.messages["Greeter.greet.result"]).toMatchObject({ payload: { $ref: "#/components/schemas/Greeter.Greeting" }, examples: [{ payload: { greeting: "Hello, Ada" } }] });
    // An event: a channel on its exchange, the routing key as address with its parameter, AMQP bindings.
    expect(doc.channels["Greeter.events.greeted"]).toMatchObject({
      address: "greetings.{lang}",
      parameters: { lang: {} },
      bindings: { amqp: { is: "routingKey", exchange: { name: names.exchange, type: "topic", durable: true } } },
    });
    expect(doc.operations["receive.Greeter.greeted"]).toMatchObject({ action: "receive", bindings: { amqp: { deliveryMode: 2, ack: true } } });
    expect(doc.components.messages["Greeter.events.greeted"].bindings.amqp.messageType).toBe("greeted");
    // What the parser makes of it: the reply and the operations are there, not merely a document.
    const parsedGreet = document!.operations().get("call.Greeter.greet")!;
    expect(parsedGreet.reply()?.address()?.location()).toBe("$message.header#/replyTo");
    expect(parsedGreet.reply()?.messages().length).toBe(3);
    expect(document!.channels().get("Greeter.events.greeted")?.bindings().get("amqp")?.value()).toMatchObject({ is: "routingKey" });

    const md = await readFile(path.join(out, "reference.md"), "utf8");
    for (const line of [
      "# API reference",
      "- [Greeter](#greeter) 1.2.0 — Says hello.",
      "  - [Greeter.greet](#greetergreet)",
      "### Greeter.greet",
      "| timeout | 2000 ms |",
      "| `banned` | That name is not greeted. |",
      `| routing key | \`greetings.{lang}\` |`,
      "- `{\"name\":\"Ada\"}`",
      "#### Greeter.Greeting",
      "Types used: [Greeting](#greetergreeting).",
    ]) expect(md).toContain(line);

    // The repository's contracts (cross-file $refs, events, several services) parse as cleanly.
    expect(repo!.code).toBe(0);
    const repoDoc = await parse(repo!.stdout);
    expect(repoDoc.problems).toEqual([]);
    expect(Object.keys(JSON.parse(repo!.stdout).operations)).toEqual(expect.arrayContaining(["call.Calculator.centroid", "call.Orders.place_order", "receive.Orders.order_placed"]));
  });

  it("prints the Markdown reference with --format markdown, and refuses a bad format or server in one line", async () => {
    const md = await warrenHere(["docs", "--format", "markdown"]);
    expect(md.code).toBe(0);
    expect(md.stdout).toContain("### Calculator.divide");
    const [format, server] = await Promise.all([warrenHere(["docs", "--format", "html"]), warrenHere(["docs", "--server", "not a url"])]);
    expect(format.code).toBe(2);
    expect(oneLine(format)).toBe("warren: option '--format <format>' argument 'html' is invalid. Allowed choices are asyncapi, markdown. (see: warren docs --help)");
    expect(server.code).toBe(2);
    expect(oneLine(server)).toBe('warren: --server must be an amqp:// or amqps:// URL, got "not a url"');
  });
});
