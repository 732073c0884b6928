/**
 * Contract versions and which of them can talk to each other. A contract's
 * `version` is semver; two versions are compatible when they share a
 * compatibility line: the major number from 1.0.0 on, `0.<minor>` before it
 * (0.x releases promise nothing across minors, as Cargo reads semver).
 * The same rule decides run-time version skew (src/rpc/server.ts,
 * src/events/subscription.ts) and the generator's breaking-change check.
 *
 * @see docs/EVOLUTION.md
 */

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/** A parsed semver version (pre-release and build parts are kept only as text). */
export interface Semver {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

/** Parses `major.minor.patch[-pre][+build]`; `undefined` when `text` is not semver. */
export function parseSemver(text: string): Semver | undefined {
  const m = SEMVER.exec(text);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}

/**
 * The compatibility line of a version: `"2"` for 2.4.1, `"0.3"` for 0.3.7;
 * `undefined` when the text is not semver (such a version is compatible only
 * with itself).
 */
export function compatibilityLine(version: string): string | undefined {
  const v = parseSemver(version);
  if (v === undefined) return undefined;
  return v.major > 0 ? String(v.major) : `0.${v.minor}`;
}

/** True when peers on contract versions `a` and `b` may exchange messages (same compatibility line, or the same text). */
export function compatibleVersions(a: string, b: string): boolean {
  if (a === b) return true;
  const line = compatibilityLine(a);
  return line !== undefined && line === compatibilityLine(b);
}

/**
 * Why a message from a peer on contract version `theirs` is refused by a
 * receiver on `ours`, or `undefined` when they are compatible (or the sender
 * did not say: peers that send no version are taken as compatible).
 * Remembers its answers, so the common case is one map lookup.
 */
export function versionSkew(service: string, ours: string, theirs: unknown, seen: Map<string, string | undefined>): string | undefined {
  if (typeof theirs !== "string" || theirs === ours) return undefined;
  if (seen.has(theirs)) return seen.get(theirs);
  const why = compatibleVersions(ours, theirs)
    ? undefined
    : `the sender's contract ${service} ${theirs.slice(0, 40)} is incompatible with this receiver's ${service} ${ours} (compatibility lines ${compatibilityLine(theirs) ?? "unknown"} and ${compatibilityLine(ours) ?? "unknown"}); regenerate the older side from the contract its peer runs`;
  if (seen.size < 64) seen.set(theirs, why);
  return why;
}
