import { describe, expect, it } from "vitest";
import { defineService, event, RpcError, type ExchangeType } from "../../src/index.js";
import { checkBindingKey, defaultBindingKey, placeholders, routingKeyFor } from "../../src/core/routing.js";

function ev(routingKey: string) {
  return defineService({
    name: "Shop",
    version: "1.0.0",
    queue: "rpc.Shop",
    methods: {},
    events: { sold: event<Record<string, unknown>>({ name: "sold", routingKey, payload: true }) },
  }).events.sold;
}

function thrown(fn: () => unknown): RpcError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RpcError);
    return err as RpcError;
  }
  throw new Error("expected an error");
}

describe("routingKeyFor", () => {
  it("returns a key without placeholders as it is", () => {
    expect(routingKeyFor(ev("shop.sold"), {})).toBe("shop.sold");
  });

  it("fills every placeholder from the payload's top-level fields", () => {
    expect(placeholders("shop.{region}.{sku}.sold")).toEqual(["region", "sku"]);
    expect(routingKeyFor(ev("shop.{region}.{sku}.sold"), { region: "eu", sku: 42 })).toBe("shop.eu.42.sold");
    expect(routingKeyFor(ev("{flag}"), { flag: false })).toBe("false");
  });

  it("refuses missing, non-scalar, empty and word-splitting values with invalid_event naming the field", () => {
    for (const [payload, text] of [
      [{}, "/region to be a string"],
      [{ region: { nested: 1 } }, "/region to be a string"],
      [{ region: "" }, '/region = ""'],
      [{ region: "eu.west" }, '/region = "eu.west"'],
      [{ region: "*" }, '/region = "*"'],
      [{ region: "#" }, '/region = "#"'],
    ] as const) {
      const err = thrown(() => routingKeyFor(ev("shop.{region}.sold"), payload));
      expect(err.code).toBe("invalid_event");
      expect(err.message).toContain("Shop.sold");
      expect(err.message).toContain(text);
    }
  });

  it("refuses a key longer than AMQP's 255 bytes", () => {
    expect(thrown(() => routingKeyFor(ev("k.{v}"), { v: "x".repeat(300) })).message).toContain("longer than 255 bytes");
  });
});

describe("binding keys", () => {
  const cases: [ExchangeType, string, string][] = [
    ["topic", "shop.{region}.sold", "shop.*.sold"],
    ["topic", "shop.sold", "shop.sold"],
    ["direct", "shop.sold", "shop.sold"],
    ["fanout", "shop.{region}.sold", ""],
  ];
  it.each(cases)("%s exchange, routing key %s -> binding key %j", (type, key, expected) => {
    expect(defaultBindingKey(ev(key), type)).toBe(expected);
  });

  it("asks for an explicit key on a direct exchange when the routing key has placeholders", () => {
    expect(() => defaultBindingKey(ev("shop.{region}"), "direct")).toThrow(/pass \{ bindingKey: "shop\.<region>" \}/);
  });

  it("accepts topic words *, # or plain, and refuses wildcards mixed into a word", () => {
    expect(checkBindingKey("orders.*.#", "topic")).toBe("orders.*.#");
    expect(() => checkBindingKey("orders.eu*", "topic")).toThrow(/"eu\*" mixes \* or #/);
    expect(checkBindingKey("orders.eu*", "direct")).toBe("orders.eu*"); // literal on a direct exchange
    expect(() => checkBindingKey("k".repeat(256), "direct")).toThrow(/longer than 255 bytes/);
  });
});
