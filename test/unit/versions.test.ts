/** src/core/versions.ts: which contract versions can talk to each other. */
import { describe, expect, it } from "vitest";
import { compatibilityLine, compatibleVersions, parseSemver, versionSkew } from "../../src/core/versions.js";

describe("compatibility lines", () => {
  it("are the major from 1.0.0 on and 0.<minor> before it", () => {
    expect(["1.0.0", "1.9.3", "1.2.0-rc.1", "1.2.0+build.5"].map(compatibilityLine)).toEqual(["1", "1", "1", "1"]);
    expect(["0.3.0", "0.3.9", "0.4.0", "0.0.1"].map(compatibilityLine)).toEqual(["0.3", "0.3", "0.4", "0.0"]);
    expect(compatibilityLine("v1")).toBeUndefined();
    expect(parseSemver("01.0.0")).toBeUndefined();
  });
  it("decide compatibility; a text that is not semver matches only itself", () => {
    expect(compatibleVersions("1.0.0", "1.12.4")).toBe(true);
    expect(compatibleVersions("1.0.0", "2.0.0")).toBe(false);
    expect(compatibleVersions("0.3.1", "0.4.0")).toBe(false);
    expect(compatibleVersions("banana", "banana")).toBe(true);
    expect(compatibleVersions("banana", "1.0.0")).toBe(false);
  });
  it("versionSkew accepts an absent or non-string version and remembers its answers", () => {
    const seen = new Map<string, string | undefined>();
    expect(versionSkew("S", "1.0.0", undefined, seen)).toBeUndefined();
    expect(versionSkew("S", "1.0.0", 2, seen)).toBeUndefined();
    expect(versionSkew("S", "1.0.0", "1.3.0", seen)).toBeUndefined();
    expect(versionSkew("S", "1.0.0", "3.1.0", seen)).toMatch(/S 3\.1\.0 is incompatible with this receiver's S 1\.0\.0 \(compatibility lines 3 and 1\)/);
    expect([...seen.keys()]).toEqual(["1.3.0", "3.1.0"]);
  });
});
