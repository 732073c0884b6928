/**
 * `warren-codegen breaking --against <dir or git ref>`: compares the contracts
 * of two versions and classifies every change as wire-breaking (peers on the
 * old contract fail at run time against peers on the new one), code-breaking
 * (existing user code stops compiling after regeneration) or safe. Services
 * are matched by their `service` name. Schemas are compared by
 * codegen/breaking-schema.ts; this file does the service level (queues,
 * exchanges, methods, events, errors), the version verdict and the output.
 *
 * Exit status: 0 when nothing is wire-breaking, or each service with a
 * wire-breaking change moved to a new compatibility line; 1 otherwise (and,
 * with `--check-version`, when a version bump does not match the changes, or
 * when a side fails to load); 2 for usage errors.
 *
 * @see docs/EVOLUTION.md
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import { compatibilityLine, compatibleVersions, parseSemver } from "../src/core/versions.js";
import { defaultExchange, defaultQueue } from "../src/core/descriptor.js";
import { exportSchemasAt, UsageError } from "./breaking-git.js";
import { compareSchema, type Change, type Loc, type Session, type Use } from "./breaking-schema.js";
import { commandName, parseFlags, type FlagSpec } from "./command-line.js";
import { resolveSettings } from "./config.js";
import { CodegenError, CodegenErrors, pointerJoin } from "./errors.js";
import { loadSchemas, toPosix, type Loaded, type LoadedFile } from "./load.js";
import type { CliIo } from "./run.js";

export type { Change } from "./breaking-schema.js";

export const BREAKING_USAGE = `usage: warren-codegen breaking --against REF [--schemas DIR] [--check-version]
  --against REF    the old contracts: a schemas directory, or a git ref (main, HEAD~1, v1.2.0)
                   whose copy of --schemas is read from the git repository around the working directory
  --schemas DIR    the new contracts (default: the config file's "schemas", else schemas)
  --check-version  also check each service's version bump against its changes
prints one line per change: "wire|code|wire+code|safe  <file>#<pointer>: <reason>"
exit 0: nothing wire-breaking, or each service with a wire-breaking change moved to a new
        compatibility line (a new major; 0.<minor> before 1.0.0)
exit 1: a wire-breaking change on the same compatibility line, a version that does not match
        its changes (--check-version), or contracts that do not load
exit 2: usage error`;

/** Options of {@link compareContracts}. */
export interface CompareOptions {
  readonly checkVersion?: boolean;
}

/** What a comparison found. */
export interface BreakingReport {
  readonly changes: readonly Change[];
  /** Version verdicts that fail the check (exit 1). */
  readonly problems: readonly string[];
  /** Version notes that do not fail it (a new compatibility line). */
  readonly notes: readonly string[];
}

/** Compares two loaded schema directories. Pure: no I/O. */
export function compareContracts(oldSide: Loaded, newSide: Loaded, options: CompareOptions = {}): BreakingReport {
  const session: Session = { old: oldSide, new: newSide, changes: [], seen: new Set() };
  const problems: string[] = [];
  const notes: string[] = [];
  const byName = (l: Loaded) => new Map(l.services.map((f) => [String(f.doc.service), f]));
  const olds = byName(oldSide);
  const news = byName(newSide);
  for (const name of [...new Set([...olds.keys(), ...news.keys()])].sort()) {
    const o = olds.get(name);
    const n = news.get(name);
    const start = session.changes.length;
    if (o === undefined) {
      session.changes.push({ service: name, wire: false, code: false, addition: true, file: n!.display, pointer: "", reason: `new service ${name}: nothing uses it yet` });
      continue;
    }
    const oldVersion = String(o.doc.version);
    if (n === undefined) {
      session.changes.push({ service: name, wire: true, code: true, addition: false, file: o.display, pointer: "", reason: `service ${name} removed: its callers and subscribers on ${oldVersion} fail, and their code stops compiling` });
      problems.push(`${name}: service removed (was ${oldVersion}); its peers fail whatever the version says, so a removal always fails this check`);
      continue;
    }
    compareService(session, name, o, n);
    const changes = session.changes.slice(start);
    versionVerdict(name, oldVersion, String(n.doc.version), changes, options, problems, notes);
  }
  return { changes: session.changes, problems, notes };
}

/** `wire  file#pointer: reason`, the lines the command prints. */
export function formatChange(c: Change): string {
  const verdict = c.wire && c.code ? "wire+code" : c.wire ? "wire" : c.code ? "code" : "safe";
  return `${verdict}  ${c.file}#${c.pointer}: ${c.reason}`;
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function compareService(s: Session, name: string, o: LoadedFile, n: LoadedFile): void {
  const ov = String(o.doc.version);
  const nv = String(n.doc.version);
  const push = (file: LoadedFile, pointer: string, wire: boolean, code: boolean, reason: string, addition = false) =>
    s.changes.push({ service: name, wire, code, addition: addition && !wire && !code, file: file.display, pointer, reason });
  /** The pointer of `key` in the new file, or in the old one when the new lacks it. */
  const where = (key: string[]): [LoadedFile, string] => {
    const has = (doc: unknown) => key.reduce<unknown>((d, k) => (d === undefined ? undefined : obj(d)[k]), doc) !== undefined;
    const ptr = key.reduce((p, k) => pointerJoin(p, k), "");
    return has(n.doc) || !has(o.doc) ? [n, ptr] : [o, ptr];
  };
  const oMethods = obj(o.doc.methods);
  const nMethods = obj(n.doc.methods);
  const oEvents = obj(o.doc.events);
  const nEvents = obj(n.doc.events);

  const oq = typeof o.doc.queue === "string" ? o.doc.queue : defaultQueue(name);
  const nq = typeof n.doc.queue === "string" ? n.doc.queue : defaultQueue(name);
  if (oq !== nq) {
    const used = Object.keys(oMethods).length > 0;
    push(...where(["queue"]), used, false, `queue "${oq}" -> "${nq}": ${used ? `callers on ${ov} send to "${oq}", which the server on ${nv} no longer consumes` : `${ov} has no methods, so nobody sends to it`}`);
  }
  const oex = { ...defaultExchange(name), ...obj(o.doc.exchange) };
  const nex = { ...defaultExchange(name), ...obj(n.doc.exchange) };
  const hadEvents = Object.keys(oEvents).length > 0;
  for (const k of ["name", "type"] as const) {
    if (oex[k] === nex[k]) continue;
    push(...where(["exchange", k]), hadEvents, false, `exchange ${k} "${String(oex[k])}" -> "${String(nex[k])}": ${hadEvents ? `subscribers on ${ov} are bound to the old ${k === "name" ? "exchange" : "exchange type"} and receive nothing more` : `${ov} has no events, so nobody is bound to it`}`);
  }
  const ou = o.doc.unknownProperties === "reject" ? "reject" : "drop";
  const nu = n.doc.unknownProperties === "reject" ? "reject" : "drop";
  if (ou !== nu) {
    const tighter = nu === "reject";
    push(...where(["unknownProperties"]), tighter, false, `unknownProperties "${ou}" -> "${nu}": ${tighter ? `the server and subscribers on ${nv} refuse properties they do not know, which peers on ${ov} may send` : "receivers on the new version drop what they do not know"}`);
  }

  for (const m of Object.keys(oMethods)) {
    if (m in nMethods) continue;
    push(o, pointerJoin("/methods", m), true, true, `method "${m}" removed: callers on ${ov} still call it; code calling or implementing it stops compiling`);
  }
  for (const m of Object.keys(nMethods)) {
    const at = pointerJoin("/methods", m);
    if (!(m in oMethods)) {
      push(n, at, false, false, `new method "${m}": the service owner implements its handler in the same change; callers on ${ov} do not know it`, true);
      continue;
    }
    const om = obj(oMethods[m]);
    const nm = obj(nMethods[m]);
    const base = { service: name, oldVersion: ov, newVersion: nv };
    const request: Use = { ...base, dir: "in", strict: nu === "reject", part: "request", builders: "callers", readers: "handlers", sender: "callers", receiver: "the server", label: `${name}.${m} request` };
    const response: Use = { ...base, dir: "out", strict: ou === "reject", part: "response", builders: "handlers", readers: "callers", sender: "the server", receiver: "callers", label: `${name}.${m} response` };
    compareSchema(s, request, loc(o, `${at}/request`, om.request), loc(n, `${at}/request`, nm.request));
    compareSchema(s, response, loc(o, `${at}/response`, om.response), loc(n, `${at}/response`, nm.response));

    const oErr = obj(om.errors);
    const nErr = obj(nm.errors);
    for (const code of Object.keys(oErr)) {
      if (code in nErr) continue;
      push(o, pointerJoin(`${at}/errors`, code), false, true, `error code "${code}" removed: callers comparing err.code === "${code}" stop compiling (safe on the wire: the server no longer sends it)`);
    }
    for (const code of Object.keys(nErr)) {
      const eat = pointerJoin(`${at}/errors`, code);
      if (!(code in oErr)) {
        push(n, eat, false, false, `new error code "${code}": callers on ${ov} receive it as an untyped RpcError with that code`, true);
        continue;
      }
      const od = obj(oErr[code]).data;
      const nd = obj(nErr[code]).data;
      if (od === undefined && nd === undefined) continue;
      if (od === undefined) {
        if (ou === "reject") push(n, `${eat}/data`, true, true, `error "${code}" now carries data: callers on ${ov} refuse data on an error that declared none (unknownProperties: reject); handlers raising it must now pass data`);
        else push(n, `${eat}/data`, false, true, `error "${code}" now carries data: callers on ${ov} drop it; handlers raising it must now pass data`);
      } else if (nd === undefined) {
        push(o, `${eat}/data`, true, true, `error "${code}" no longer declares data: callers on ${ov} check its data against the old schema; code reading err.data stops compiling`);
      } else {
        const use: Use = { ...response, part: `error "${code}" data`, label: `${name}.${m} error "${code}"` };
        compareSchema(s, use, loc(o, `${eat}/data`, od), loc(n, `${eat}/data`, nd));
      }
    }
    const oi = om.idempotent === true;
    const ni = nm.idempotent === true;
    if (oi && !ni) push(...where(["methods", m, "idempotent"]), true, false, `idempotent true -> false: callers on ${ov} still retry it after a lost connection, so it may run twice`);
    if (!oi && ni) push(...where(["methods", m, "idempotent"]), false, false, `idempotent false -> true: callers may now retry it`);
    if (om.timeoutMs !== nm.timeoutMs) push(...where(["methods", m, "timeoutMs"]), false, false, `timeoutMs ${String(om.timeoutMs ?? "default")} -> ${String(nm.timeoutMs ?? "default")}: a client-side default only`);
  }

  for (const e of Object.keys(oEvents)) {
    if (e in nEvents) continue;
    push(o, pointerJoin("/events", e), true, true, `event "${e}" removed: subscribers on ${ov} never receive it again; code subscribing to or publishing it stops compiling`);
  }
  for (const e of Object.keys(nEvents)) {
    const at = pointerJoin("/events", e);
    if (!(e in oEvents)) {
      push(n, at, false, false, `new event "${e}": the service owner publishes it in the same change; subscribers on ${ov} do not bind to it`, true);
      continue;
    }
    const oe = obj(oEvents[e]);
    const ne = obj(nEvents[e]);
    const ork = typeof oe.routingKey === "string" ? oe.routingKey : e;
    const nrk = typeof ne.routingKey === "string" ? ne.routingKey : e;
    if (ork !== nrk) push(...where(["events", e, "routingKey"]), true, false, `routing key "${ork}" -> "${nrk}": subscribers on ${ov} bind with the old key and miss events published with the new one`);
    const use: Use = { service: name, oldVersion: ov, newVersion: nv, dir: "out", strict: ou === "reject", part: "payload", builders: "publishers", readers: "subscribers", sender: "publishers", receiver: "subscribers", label: `${name} event ${e}` };
    compareSchema(s, use, loc(o, `${at}/payload`, oe.payload), loc(n, `${at}/payload`, ne.payload));
  }
}

function loc(file: LoadedFile, pointer: string, schema: unknown): Loc {
  return { file, pointer, schema };
}

type Bump = 0 | 1 | 2 | 3; // none, patch, minor, new compatibility line
const BUMP_WORDS = ["no change", "a patch version", "a minor version", "a new compatibility line"];

function versionVerdict(name: string, ov: string, nv: string, changes: readonly Change[], options: CompareOptions, problems: string[], notes: string[]): void {
  const wire = changes.some((c) => c.wire);
  const sameLine = compatibleVersions(ov, nv);
  if (wire && sameLine) {
    problems.push(`${name}: wire-breaking changes, but ${ov} -> ${nv} stays on compatibility line ${compatibilityLine(nv) ?? nv}, so peers on both versions still talk; raise the ${majorWord(nv)} version (${nextLine(nv)})`);
  } else if (wire) {
    notes.push(`${name}: ${ov} -> ${nv} starts compatibility line ${compatibilityLine(nv) ?? nv}; peers on ${ov} and ${nv} refuse each other, so the wire-breaking changes are allowed`);
  }
  if (!options.checkVersion) return;
  const o = parseSemver(ov);
  const n = parseSemver(nv);
  if (o === undefined || n === undefined) return void problems.push(`${name}: version ${o === undefined ? ov : nv} is not semver`);
  const order = Math.sign(n.major - o.major) || Math.sign(n.minor - o.minor) || Math.sign(n.patch - o.patch);
  if (order < 0) return void problems.push(`${name}: version went down, ${ov} -> ${nv}`);
  if (changes.length === 0) return;
  if (ov === nv) return void problems.push(`${name}: ${changes.length} change${changes.length === 1 ? "" : "s"}, but the version is still ${ov}; raise it to at least ${suggest(ov, needed(changes, o.major))}`);
  const need = needed(changes, o.major);
  const got: Bump = !sameLine ? 3 : o.major > 0 && n.minor !== o.minor ? 2 : 1;
  const why = need === 3 ? "wire-breaking changes need" : changes.some((c) => c.code) ? "code-breaking changes need" : "safe additions need";
  if (got < need) problems.push(`${name}: ${ov} -> ${nv} is ${BUMP_WORDS[got]}, but ${why} ${BUMP_WORDS[need]} (${suggest(ov, need)})`);
}

/**
 * The least bump the changes call for. Only wire-breaking changes need a new
 * compatibility line: peers on two lines refuse each other at run time, so a
 * change the wire survives (code-breaking, an addition) must not force one;
 * it needs a minor bump. In 0.x a minor bump is a new line, so there it needs
 * only a patch.
 */
function needed(changes: readonly Change[], major: number): Bump {
  if (changes.some((c) => c.wire)) return 3;
  if (changes.some((c) => c.code || c.addition) && major > 0) return 2;
  return 1;
}

function suggest(v: string, bump: Bump): string {
  const p = parseSemver(v);
  if (p === undefined) return "a semver version";
  if (bump === 3) return nextLine(v);
  if (bump === 2) return `${p.major}.${p.minor + 1}.0`;
  return `${p.major}.${p.minor}.${p.patch + 1}`;
}

function nextLine(v: string): string {
  const p = parseSemver(v);
  if (p === undefined) return "a semver version";
  return p.major > 0 ? `${p.major + 1}.0.0` : `0.${p.minor + 1}.0`;
}

function majorWord(v: string): string {
  return (parseSemver(v)?.major ?? 1) > 0 ? "major" : "minor";
}

/** The options of `warren-codegen breaking` (also declared, for `warren breaking`, in codegen/cli/main.ts). */
const OPTIONS = {
  against: { type: "string", value: "ref" },
  schemas: { type: "string", value: "dir" },
  "check-version": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies Record<string, FlagSpec>;

/** `warren-codegen breaking ...` (or `warren breaking ...`, `io.program`): resolves to the exit code. */
export async function runBreaking(argv: readonly string[], io: CliIo): Promise<number> {
  const self = commandName(io.program, "breaking");
  // One line: the usage is one --help away.
  const usage = (message: string) => {
    io.err(`${self}: ${message} (see: ${self} --help)`);
    return 2;
  };
  const parsed = parseFlags(argv, OPTIONS);
  if (parsed.problem !== undefined) return usage(parsed.problem);
  const { values } = parsed;
  if (values.help) {
    io.out(BREAKING_USAGE);
    return 0;
  }
  if (values.against === undefined) return usage("--against is required: the old contracts, a git ref (main, HEAD~1) or a schemas directory");
  // The new contracts: --schemas, else the config file's (warren.config.json), else schemas/.
  let schemas: string;
  try {
    schemas = toPosix(path.relative(io.cwd, (await resolveSettings({ schemas: values.schemas }, io.cwd)).schemas)) || ".";
  } catch (error) {
    if (error instanceof CodegenErrors) for (const e of error.errors) io.err(e.format());
    else if (error instanceof CodegenError) io.err(error.format());
    else io.err(`${self}: ${(error as Error).message}`);
    return 1;
  }
  const newDir = path.resolve(io.cwd, schemas);
  if (!(await isDirectory(newDir))) return usage(`--schemas "${schemas}" is not a directory`);

  let cleanup: (() => Promise<void>) | undefined;
  try {
    let loadOld: Promise<Loaded>;
    if (await isDirectory(path.resolve(io.cwd, values.against))) {
      loadOld = loadSide(values.against, io.cwd, "old");
    } else {
      const exported = await exportSchemasAt(values.against, newDir, io.cwd);
      cleanup = exported.cleanup;
      const prefix = toPosix(path.relative(io.cwd, exported.dir));
      const rename = (display: string) => `${exported.label}${display.slice(prefix.length)}`;
      loadOld = loadSide(prefix, io.cwd, `old (${values.against})`, rename).then((l) => relabel(l, rename));
    }
    // Load both before reporting, so one run names the problems of both sides.
    const [o, n] = await Promise.allSettled([loadOld, loadSide(schemas, io.cwd, "new")]);
    const failed = [o, n].filter((r) => r.status === "rejected").map((r) => r.reason as unknown);
    if (failed.length > 0) {
      if (!failed.every((e) => e instanceof LoadFailure)) throw failed.find((e) => !(e instanceof LoadFailure));
      for (const e of failed as LoadFailure[]) {
        io.err(`${self}: the ${e.side} contracts do not load:`);
        for (const line of e.lines) io.err(line);
      }
      return 1;
    }
    const oldSide = (o as PromiseFulfilledResult<Loaded>).value;
    const newSide = (n as PromiseFulfilledResult<Loaded>).value;
    // An empty side is a mistyped path far more often than a real first or last version: it would pass as "every service new".
    if (oldSide.services.length === 0 && oldSide.shared.size === 0) return usage(`--against "${values.against}" holds no contracts (no .json files)`);
    if (newSide.services.length === 0 && newSide.shared.size === 0) return usage(`--schemas "${schemas}" holds no contracts (no .json files)`);
    const report = compareContracts(oldSide, newSide, { checkVersion: values["check-version"] === true });
    for (const c of report.changes) io.out(formatChange(c));
    if (report.changes.length === 0) io.out("no contract changes");
    for (const note of report.notes) io.out(note);
    for (const problem of report.problems) io.err(problem);
    return report.problems.length > 0 ? 1 : 0;
  } catch (error) {
    if (error instanceof UsageError) return usage(error.message);
    io.err(`${self}: ${(error as Error).message ?? String(error)}`);
    return 1;
  } finally {
    await cleanup?.();
  }
}

class LoadFailure extends Error {
  constructor(
    readonly side: string,
    readonly lines: readonly string[],
  ) {
    super(lines.join("\n"));
  }
}

async function loadSide(dir: string, cwd: string, side: string, rename: (display: string) => string = (d) => d): Promise<Loaded> {
  try {
    return await loadSchemas(dir, cwd);
  } catch (error) {
    const errors = error instanceof CodegenErrors ? error.errors : error instanceof CodegenError ? [error] : undefined;
    if (errors === undefined) throw error;
    throw new LoadFailure(side, errors.map((e) => new CodegenError(rename(e.file), e.pointer, e.message, e.position).format()));
  }
}

/** The same files, shown under another name (`HEAD:schemas/x.service.json` for a git ref). */
function relabel(loaded: Loaded, rename: (display: string) => string): Loaded {
  const map = (f: LoadedFile): LoadedFile => ({ ...f, display: rename(f.display) });
  return { ...loaded, services: loaded.services.map(map), shared: new Map([...loaded.shared].map(([k, f]) => [k, map(f)])) };
}

async function isDirectory(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isDirectory(), () => false);
}
