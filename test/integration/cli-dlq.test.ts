/**
 * `warren dlq list|show|replay|purge`, spawned as the bin against the real
 * broker, on the dead letters of a consumer group run in this process.
 */
import { describe, expect, it } from "vitest";
import { descriptorOf, loadContracts } from "../../codegen/cli/contracts.js";
import { deleteAfter, openConnection, until } from "../helpers/broker.js";
import { greeterContract, greeterNames, oneLine, tempSchemas, warren, warrenHere } from "../cli/run.js";

describe("warren dlq", () => {
  it("lists and shows dead letters without losing them, replays them after a fix (dry run first), purges with --yes", async () => {
    const names = greeterNames();
    const schemas = await tempSchemas({ "greeter.service.json": greeterContract(names) });
    const { model } = await loadContracts({ schemas }, process.cwd());
    const Greeter = descriptorOf(model.services[0]!, model);
    const group = "audit";
    const queue = deleteAfter(`${names.exchange}.greeted.${group}`);
    const dead = deleteAfter(`${queue}.dead`);

    const conn = await openConnection();
    const bus = conn.events();
    let broken = true;
    const handled: unknown[] = [];
    await bus.subscribe(
      Greeter.events.greeted!,
      (payload) => {
        if (broken) throw new Error("audit store is down");
        handled.push(payload);
      },
      { group, maxAttempts: 1 },
    );
    await bus.publish(Greeter.events.greeted!, { name: "Ada", lang: "en" }, { messageId: "m-ada" });
    await bus.publish(Greeter.events.greeted!, { name: "Jean", lang: "fr" }, { messageId: "m-jean" });
    const ch = await conn.channel();
    const depth = async () => (await ch.checkQueue(dead)).messageCount;
    await until(async () => (await depth()) === 2, "two dead letters");
    const target = ["Greeter.greeted", "--group", group, "--schemas", schemas];

    const list = await warren(["dlq", "list", ...target]);
    const json = await warrenHere(["dlq", "list", "--json", "--queue", dead]);
    const show = await warrenHere(["dlq", "show", ...target, "m-jean"]);
    expect(list).toMatchObject({ code: 0, stderr: "" });
    expect(list!.stdout).toMatch(new RegExp(`^${dead.replace(/\./g, "\\.")}: 2 dead letters\\n`));
    expect(list!.stdout).toMatch(/1 +m-ada +greeted +handler_failed +1 +greetings\.en +audit store is down/);
    expect(list!.stdout).toMatch(/2 +m-jean +greeted +handler_failed +1 +greetings\.fr +audit store is down/);
    expect(JSON.parse(json!.stdout)).toMatchObject({
      queue: dead,
      count: 2,
      dead: [
        { n: 1, messageId: "m-ada", reason: "handler_failed", error: "audit store is down", attempt: 1, exchange: names.exchange, routingKey: "greetings.en", deadQueue: queue, body: { name: "Ada", lang: "en" } },
        { n: 2, messageId: "m-jean", body: { name: "Jean", lang: "fr" } },
      ],
    });
    expect(show).toMatchObject({ code: 0, stderr: "" });
    expect(show!.stdout).toContain("dead letter #2 of");
    expect(show!.stdout).toContain(`published to ${names.exchange} with routing key greetings.fr`);
    expect(show!.stdout).toContain('    "name": "Jean"');
    expect(await depth()).toBe(2); // browsing lost nothing

    const dry = await warrenHere(["dlq", "replay", ...target, "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`would replay #1 m-ada to exchange ${names.exchange} with routing key greetings.en`);
    expect(dry.stdout).toContain("dry run: 2 of 2 dead letters would be replayed; nothing changed");
    expect(await depth()).toBe(2);

    broken = false; // the fix
    const replay = await warren(["dlq", "replay", ...target]);
    expect(replay).toMatchObject({ code: 0, stderr: "" });
    expect(replay.stdout).toContain(`replayed 2 of 2 dead letters from ${dead}`);
    await until(() => handled.length === 2, "both replayed events handled");
    expect(handled).toEqual(expect.arrayContaining([{ name: "Ada", lang: "en" }, { name: "Jean", lang: "fr" }]));
    expect(await depth()).toBe(0);

    broken = true;
    await bus.publish(Greeter.events.greeted!, { name: "Alan", lang: "en" });
    await until(async () => (await depth()) === 1, "one more dead letter");
    const refused = await warrenHere(["dlq", "purge", ...target]);
    expect(refused.code).toBe(2);
    expect(oneLine(refused)).toBe(`warren: ${dead} holds 1 dead letter; add --yes to delete them for good`);
    expect(await depth()).toBe(1);
    const purge = await warren(["dlq", "purge", ...target, "--yes"]);
    expect(purge).toMatchObject({ code: 0, stdout: `purged 1 dead letter from ${dead}\n` });
    expect(await depth()).toBe(0);
    await ch.close();
  });

  it("Service alone names the dead letters of a subscription to several of its events (subscribeAll)", async () => {
    const names = greeterNames();
    const contract = greeterContract(names) as { events: Record<string, unknown> };
    const payload = { type: "object", required: ["name"], additionalProperties: false, properties: { name: { type: "string" } } };
    contract.events.waved = { description: "Someone was waved at.", routingKey: "waves", payload };
    const schemas = await tempSchemas({ "greeter.service.json": contract });
    const { model } = await loadContracts({ schemas }, process.cwd());
    const Greeter = descriptorOf(model.services[0]!, model);
    const group = "all";
    deleteAfter(`${names.exchange}.${group}`);
    const dead = deleteAfter(`${names.exchange}.${group}.dead`);
    const conn = await openConnection();
    const bus = conn.events();
    const fail = () => {
      throw new Error("audit store is down");
    };
    const sub = await bus.subscribeAll(Greeter, { greeted: fail, waved: fail }, { group, maxAttempts: 1 });
    expect(sub.deadLetterQueue).toBe(dead);
    await bus.publish(Greeter.events.greeted!, { name: "Ada", lang: "en" }, { messageId: "m-ada" });
    const ch = await conn.channel();
    await until(async () => (await ch.checkQueue(dead)).messageCount === 1, "one dead letter");
    await ch.close();
    const list = await warrenHere(["dlq", "list", "Greeter", "--group", group, "--schemas", schemas]);
    expect(list).toMatchObject({ code: 0, stderr: "" });
    expect(list.stdout).toMatch(new RegExp(`^${dead.replace(/\./g, "\\.")}: 1 dead letter\\n`));
    expect(list.stdout).toMatch(/1 +m-ada +greeted +handler_failed +1 +greetings\.en +audit store is down/);
  });

  it("a missing dead-letter queue, an unknown event, no target, an unknown dead letter: one line each", async () => {
    const names = greeterNames();
    const schemas = await tempSchemas({ "greeter.service.json": greeterContract(names) });
    const [missing, event, none, both] = await Promise.all([
      warrenHere(["dlq", "list", "Greeter.greeted", "--group", "nobody", "--schemas", schemas]),
      warrenHere(["dlq", "list", "Greeter.greet", "--schemas", schemas]),
      warrenHere(["dlq", "list", "--schemas", schemas]),
      warrenHere(["dlq", "list", "--queue", "x", "--group", "y"]),
    ]);
    expect([missing.code, event.code, none.code, both.code]).toEqual([5, 2, 2, 2]);
    expect(oneLine(missing)).toBe(`warren: no queue "${names.exchange}.greeted.nobody.dead" on the broker (no subscriber has dead-lettered anything there, or the name is wrong)`);
    expect(oneLine(event)).toBe('warren: Greeter has no event "greet"; events: greeted');
    expect(oneLine(none)).toBe("warren: which dead letters? write Service.event [--group GROUP] (Service alone for a subscribeAll queue's), or --queue NAME");
    expect(oneLine(both)).toBe("warren: --queue names the dead-letter queue itself; it does not combine with --group");
    const spawned = await warren(["dlq", "show", "--queue", `${names.exchange}.none.dead`, "1"]);
    expect(spawned.code).toBe(5);
    expect(oneLine(spawned)).toContain("no queue");
  });
});
