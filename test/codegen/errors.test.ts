/**
 * Bad contracts are refused: file, JSON pointer (or line:column) and reason,
 * exit code 1, no stack trace, and nothing written. The exact messages are
 * file snapshots next to each fixture.
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { FIXTURES, TMP, cli, listFiles } from "./helpers.js";

afterAll(() => rm(path.join(TMP, "errors"), { recursive: true, force: true }));

const BAD: Record<string, RegExp> = {
  "invalid-json": /broken\.service\.json:4:3: invalid JSON: expected ',' or '}'/,
  "invalid-json-end": /truncated\.service\.json:2:1: invalid JSON: .*end of file/,
  "meta-schema-violation": /bad\.service\.json:\d+:\d+ #\/methods\/ok\/request\/type: must be one of "array"/,
  "unresolved-ref-in-file": /lost\.service\.json:\d+:\d+ #\/methods\/find\/request\/\$ref: unresolved \$ref "#\/\$defs\/Missing"/,
  "unresolved-ref-cross-file": /lost\.service\.json:\d+:\d+ #\/methods\/find\/request\/properties\/a\/\$ref: unresolved \$ref "common\/nope\.json/,
  "unresolved-ref-typo": /atlas\.service\.json:\d+:\d+ #\/methods\/find\/request\/properties\/a\/\$ref: unresolved \$ref "#\/\$defs\/Pont": this file has no \$defs\/Pont; did you mean "Point"\?/,
  "duplicate-method-names": /dup\.service\.json:\d+:\d+ #\/methods\/add: duplicate key "add"/,
  "name-clash": /clash\.service\.json:\d+:\d+ #\/methods\/addPoint: methods "add_point" and "addPoint" both become "addPoint"/,
  "reserved-names": /reserved\.service\.json:\d+:\d+ #\/methods\/then: method name "then" is reserved/,
  "proto-key": /proto\.service\.json:\d+:\d+ #\/methods\/__proto__: the key "__proto__" is not allowed/,
  "queue-clash": /b\.service\.json:\d+:\d+ #\/queue: queue "rpc\.shared" is already claimed by .*a\.service\.json/,
  "service-name-clash": /b\.service\.json:\d+:\d+ #\/service: service name "Twin" is already claimed/,
  "nested-defs": /nested\.service\.json:\d+:\d+ #\/methods\/go\/request\/tsType: "tsType" is not allowed/,
  "event-placeholder": /shop\.service\.json:\d+:\d+ #\/events\/sold\/routingKey: routing key placeholder \{region\} must name a required top-level field of the payload/,
  "event-routing-key": /shop\.service\.json:\d+:\d+ #\/events\/sold\/routingKey: must match pattern .*dot-separated words/,
  "exchange-clash": /b\.service\.json:\d+:\d+ #\/exchange: exchange "events\.shared" is already claimed by .*a\.service\.json/,
  "event-name-clash": /clash\.service\.json:\d+:\d+ #\/events\/orderCreated: events "order_created" and "orderCreated" both become "orderCreated"/,
  "unknown-keyword": /library\.service\.json:13:21 #\/methods\/lend\/request\/properties\/isbn\/typ: unknown keyword "typ"; did you mean "type"\?/,
  "required-not-in-properties": /library\.service\.json:10:30 #\/methods\/lend\/request\/required\/1: required property "membr" is not in "properties" and additionalProperties is false, so no value can pass; did you mean "member"\?/,
  "unknown-format": /library\.service\.json:8:81 #\/methods\/lend\/request\/properties\/due\/format: unknown format "date-tme"; did you mean "date-time"\?/,
  "bad-default-example": /library\.service\.json:14:69 #\/methods\/lend\/request\/properties\/days\/default: default 30 does not match its schema: must be <= 28/,
  "misnamed-service-file": /library\.json:1:1: this looks like a service contract, but only files ending in \.service\.json are read as services .*rename it to library\.service\.json/,
};

describe.each(Object.entries(BAD))("%s", (name, expected) => {
  test("is refused with file, pointer and reason, and nothing is written", async () => {
    const out = path.join(TMP, "errors", name);
    await rm(out, { recursive: true, force: true });
    const r = await cli(["--schemas", path.join("test/codegen/fixtures", name, "schemas"), "--out", out]);
    expect(r.code).toBe(1);
    expect(r.out).toEqual([]);
    const text = r.err.join("\n");
    expect(text).toMatch(expected);
    expect(text).not.toMatch(/\n\s+at |Error:/);
    for (const line of r.err) expect(line).toMatch(/^test\/codegen\/fixtures\/[^ ]+\.json:\d+:\d+(: | #\/)/);
    expect(await listFiles(out)).toEqual([]);
    await expect(`${text}\n`).toMatchFileSnapshot(path.join(FIXTURES, name, "expected-errors.txt"));
  });
});

test("reserved names: every Object.prototype member and then/toString/hasOwnProperty/valueOf is refused", async () => {
  const r = await cli(["--schemas", "test/codegen/fixtures/reserved-names/schemas", "--out", path.join(TMP, "errors", "reserved")]);
  for (const n of ["constructor", "then", "toString", "to_string", "hasOwnProperty", "valueOf"]) {
    expect(r.err.some((l) => l.includes(`#/methods/${n}: method name "${n}"`)), n).toBe(true);
  }
  expect(r.err.some((l) => l.includes('error code "timeout" is reserved for the framework'))).toBe(true);
});

test("a failing run leaves an existing output directory untouched", async () => {
  const out = path.join(TMP, "errors", "untouched");
  await rm(out, { recursive: true, force: true });
  await mkdir(path.join(out, "broken"), { recursive: true });
  await writeFile(path.join(out, "broken", "types.ts"), "// @generated by warren codegen from schemas/x. DO NOT EDIT.\nexport {};\n");
  const r = await cli(["--schemas", "test/codegen/fixtures/invalid-json/schemas", "--out", out]);
  expect(r.code).toBe(1);
  expect(await listFiles(out)).toEqual(["broken/types.ts"]);
});

test("usage errors exit 2 with one line naming --help", async () => {
  const r = await cli(["--bogus"]);
  expect(r.code).toBe(2);
  expect(r.err).toEqual(["warren-codegen: unknown option '--bogus' (see: warren-codegen --help)"]);
  expect((await cli(["--check", "--scaffold", "x"])).code).toBe(2);
});
