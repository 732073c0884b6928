/** src/core/string-length.ts: maxLength / minLength give exactly Ajv's results and errors, without walking strings that their length decides. */
import { describe, expect, it } from "vitest";
import { Ajv2020 } from "ajv/dist/2020.js";
import { useFastStringLength } from "../../src/core/string-length.js";

/** Strings of every kind of code unit: ASCII, BMP, surrogate pairs, lone surrogates, around the limits. */
function strings(): string[] {
  const out = new Set(["", "a", "😀", "a😀", "😀a", "\uD800\uDC00", "\uDC00\uD800", "\uD800\uD800", "\uD800a", "a\uDC00"]);
  for (let len = 0; len <= 12; len++) for (const unit of ["x", "é", "😀", "\uD800", "\uDC00"]) out.add(unit.repeat(len));
  const atoms = ["a", "é", "中", "😀", "\uD800", "\uDC00", "𐍈"];
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  for (let i = 0; i < 600; i++) out.add(Array.from({ length: rnd(10) }, () => atoms[rnd(atoms.length)]).join(""));
  for (const len of [4095, 4096, 4097]) out.add("x".repeat(len)).add("x".repeat(len - 2) + "😀").add("😀".repeat(len >> 1));
  return [...out];
}

describe("fast maxLength / minLength", () => {
  const stock = new Ajv2020({ allErrors: true });
  const fast = new Ajv2020({ allErrors: true });
  useFastStringLength(fast);
  const limits = [0, 1, 2, 3, 4, 5, 6, 7, 11, 4095, 4096];
  const schemas = [
    ...limits.flatMap((m) => [{ type: "string", maxLength: m }, { type: "string", minLength: m }]),
    ...[[1, 3], [2, 2], [4, 8], [4096, 4096]].map(([n, m]) => ({ type: "string", minLength: n, maxLength: m, pattern: "^x" })),
    { type: "object", properties: { s: { type: "array", items: { type: "string", minLength: 2, maxLength: 5 } } } },
  ];

  it("accepts and refuses exactly what Ajv does, with the same errors in the same order", () => {
    const values = strings();
    let compared = 0;
    for (const schema of schemas) {
      const a = stock.compile(schema);
      const b = fast.compile(schema);
      const nested = "properties" in schema;
      for (const s of values) {
        const value = nested ? { s: [s, "x", s] } : s;
        const ok = a(value);
        expect(b(value), `${JSON.stringify(schema)} on ${JSON.stringify(s.slice(0, 20))} (${s.length})`).toBe(ok);
        expect(b.errors ?? null).toEqual(a.errors ?? null);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(10_000);
  });

  it("decides a 4,096-character ASCII string under a 4,096 limit without counting code points", () => {
    const validate = fast.compile({ type: "string", maxLength: 4096 });
    const s = "x".repeat(4096);
    // A string that cannot hold surrogates is decided by its length: the surrogate scan and count never run.
    const search = String.prototype.search;
    let scans = 0;
    String.prototype.search = function (this: string, searcher: RegExp) {
      scans++;
      return search.call(this, searcher);
    } as typeof search;
    try {
      expect(validate(s)).toBe(true);
    } finally {
      String.prototype.search = search;
    }
    expect(scans).toBe(0);
  });
});
