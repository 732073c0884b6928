/**
 * The schema half of `warren-codegen breaking`: compares an old and a new JSON
 * Schema in one direction and records every difference as a {@link Change}.
 *
 * Direction is what decides the wire verdict. `in` (a request): old callers
 * send, the new server receives, so the new schema must accept everything the
 * old one did — tightening breaks. `out` (a response, error data, an event
 * payload): the new side sends, old receivers check, so the new schema may
 * only produce what the old one accepted — loosening breaks. Receivers drop
 * unknown properties unless the receiving contract says
 * `"unknownProperties": "reject"`.
 *
 * The code verdict does not depend on direction: every schema is built by one
 * party (callers, handlers, publishers) and read by another, so a property
 * that disappears, becomes required, becomes optional, or changes its
 * TypeScript type breaks someone's code; a widened enum or union does not
 * (only exhaustive switches notice).
 *
 * Keywords are compared one by one, which is conservative: a change this file
 * cannot judge is reported as wire-breaking, "cannot prove compatible".
 *
 * @see docs/EVOLUTION.md
 */
import { pointerJoin } from "./errors.js";
import type { Loaded, LoadedFile } from "./load.js";
import {
  allowed, at, bound, canon, child, compareBounds, covers, esc, isObject, locOf, resolveRef, sameSet, show, showBound, showTs, showType,
  tsKinds, typeSet, type Change, type Loc, type Obj, type Session, type Use,
} from "./breaking-model.js";

export type { Change, Loc, Session, Use } from "./breaking-model.js";

/** `both`: provably loosens and tightens; `unknown`: cannot tell. */
type Effect = "loosen" | "tighten" | "both" | "unknown";

const ANNOTATIONS = new Set(["description", "title", "$comment", "examples", "deprecated", "readOnly", "writeOnly", "$schema", "$id", "contentMediaType", "contentEncoding"]);
const HANDLED = new Set([
  "$ref", "default", "type", "enum", "const", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "multipleOf",
  "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "pattern", "format", "uniqueItems",
  "items", "prefixItems", "properties", "required", "additionalProperties", "anyOf", "oneOf", "allOf",
]);

/** Compares `o` (old) with `n` (new) as used by `use`; appends what differs to `session.changes`. */
export function compareSchema(session: Session, use: Use, o: Loc, n: Loc): void {
  new Comparer(session, use, false).schema(o, n);
}

class Comparer {
  constructor(
    private readonly s: Session,
    private readonly use: Use,
    /** A `$ref` was followed: lines get the use's label. */
    private readonly via: boolean,
  ) {}

  schema(o0: Loc, n0: Loc): void {
    const o = this.deref(this.s.old, o0);
    const n = this.deref(this.s.new, n0);
    if (o === undefined || n === undefined) return;
    if (o !== o0 || n !== n0) {
      const key = `${this.use.service}|${this.use.dir}|${this.use.strict}|${o.file.key}#${o.pointer}|${n.file.key}#${n.pointer}`;
      if (this.s.seen.has(key)) return;
      this.s.seen.add(key);
      if (!this.via) return new Comparer(this.s, this.use, true).compare(o, n);
    }
    this.compare(o, n);
  }

  /** Follows a schema that is only a `$ref` (plus annotations); `undefined` (after reporting) when it does not resolve. */
  private deref(side: Loaded, loc: Loc): Loc | undefined {
    let at = loc;
    for (let hops = 0; hops < 100; hops++) {
      const s = at.schema;
      if (!isObject(s) || typeof s.$ref !== "string") return at;
      if (Object.keys(s).some((k) => k !== "$ref" && !ANNOTATIONS.has(k) && k !== "default")) return at;
      const target = resolveRef(side, at.file, s.$ref);
      if (target === undefined) {
        this.emit({ file: at.file, pointer: pointerJoin(at.pointer, "$ref") }, `unresolved $ref "${s.$ref}"`, { wire: true, code: false }, "cannot prove compatible");
        return undefined;
      }
      at = target;
    }
    return at;
  }

  private compare(o: Loc, n: Loc): void {
    if (o.schema === false || n.schema === false) {
      if (o.schema === n.schema) return;
      if (n.schema === false) return this.effect(o, n, undefined, "schema is now false (nothing is valid)", "tighten", `${this.use.builders} can no longer build a value`);
      return this.effect(o, n, undefined, "schema was false (nothing was valid)", "loosen");
    }
    const os = isObject(o.schema) ? o.schema : {};
    const ns = isObject(n.schema) ? n.schema : {};
    if (typeof os.$ref === "string" || typeof ns.$ref === "string") {
      // A $ref beside other keywords: compare both targets, then the rest keyword by keyword.
      if (typeof os.$ref === "string" && typeof ns.$ref === "string") {
        this.schema(locOf(this.s.old, o.file, o.pointer, os), locOf(this.s.new, n.file, n.pointer, ns));
      } else {
        this.effect(o, n, "$ref", "$ref added or removed beside other keywords", "unknown");
      }
    }
    this.types(o, n, os, ns);
    this.values(o, n, os, ns);
    this.bounds(o, n, os, ns);
    this.multipleOf(o, n, os, ns);
    for (const kw of ["minLength", "minItems", "minProperties"]) this.count(o, n, os, ns, kw, "min");
    for (const kw of ["maxLength", "maxItems", "maxProperties"]) this.count(o, n, os, ns, kw, "max");
    for (const kw of ["pattern", "format"]) this.textConstraint(o, n, os, ns, kw);
    if (Boolean(os.uniqueItems) !== Boolean(ns.uniqueItems)) {
      this.effect(o, n, "uniqueItems", `uniqueItems ${Boolean(os.uniqueItems)} -> ${Boolean(ns.uniqueItems)}`, ns.uniqueItems ? "tighten" : "loosen");
    }
    this.arrays(o, n, os, ns);
    this.objects(o, n, os, ns);
    for (const kw of ["anyOf", "oneOf"]) this.branches(o, n, os, ns, kw);
    this.allOf(o, n, os, ns);
    if ("default" in os || "default" in ns) {
      if (canon(os.default) !== canon(ns.default)) this.emit(at(o, n, "default"), `default ${show(os.default)} -> ${show(ns.default)}`, { wire: false, code: false }, "defaults are not sent on the wire");
    }
    for (const kw of new Set([...Object.keys(os), ...Object.keys(ns)])) {
      if (HANDLED.has(kw) || ANNOTATIONS.has(kw)) continue;
      if (canon(os[kw]) !== canon(ns[kw])) this.effect(o, n, kw, `keyword "${kw}" changed`, "unknown");
    }
  }

  private types(o: Loc, n: Loc, os: Obj, ns: Obj): void {
    const ot = typeSet(os.type);
    const nt = typeSet(ns.type);
    if (sameSet(ot, nt)) return;
    const lost = ot === undefined ? nt !== undefined : [...ot].some((t) => !covers(nt, t));
    const gained = nt === undefined ? ot !== undefined : [...nt].some((t) => !covers(ot, t));
    if (!lost && !gained) return;
    const code = !sameSet(tsKinds(ot), tsKinds(nt)) ? `its TypeScript type changes (${showTs(ot)} -> ${showTs(nt)})` : undefined;
    this.effect(o, n, "type", `type ${showType(ot)} -> ${showType(nt)}`, lost && gained ? "both" : lost ? "tighten" : "loosen", code);
  }

  /** `enum` and `const`, as one set of allowed values. */
  private values(o: Loc, n: Loc, os: Obj, ns: Obj): void {
    const ov = allowed(os);
    const nv = allowed(ns);
    if (ov === undefined && nv === undefined) return;
    const kw = "const" in ns || (!("enum" in ns) && "const" in os) ? "const" : "enum";
    if (ov === undefined) return this.effect(o, n, kw, `${kw} added (${[...nv!].join(", ")})`, "tighten", `${this.use.builders} passing other values stop compiling`);
    if (nv === undefined) return this.effect(o, n, kw, `${kw} removed (was ${[...ov].join(", ")})`, "loosen");
    const removed = [...ov].filter((v) => !nv.has(v));
    const added = [...nv].filter((v) => !ov.has(v));
    if (removed.length === 0 && added.length === 0) return;
    const code = removed.length > 0 ? `${this.use.builders} using ${removed.join(", ")} stop compiling` : undefined;
    if (removed.length === 0) return this.effect(o, n, kw, `${kw} widened (adds ${added.join(", ")})`, "loosen", undefined, true);
    if (added.length === 0) return this.effect(o, n, kw, `${kw} narrowed (removes ${removed.join(", ")})`, "tighten", code);
    this.effect(o, n, kw, `${kw} changed (removes ${removed.join(", ")}; adds ${added.join(", ")})`, "both", code);
  }

  private bounds(o: Loc, n: Loc, os: Obj, ns: Obj): void {
    for (const side of ["lower", "upper"] as const) {
      const [incl, excl] = side === "lower" ? ["minimum", "exclusiveMinimum"] : ["maximum", "exclusiveMaximum"];
      const ob = bound(os, incl, excl, side);
      const nb = bound(ns, incl, excl, side);
      const cmp = compareBounds(ob, nb, side);
      if (cmp === 0) continue;
      const kw = nb !== undefined ? (nb.exclusive ? excl : incl) : ob!.exclusive ? excl : incl;
      this.effect(o, n, kw, `${side} bound ${showBound(ob, side)} -> ${showBound(nb, side)}`, cmp > 0 ? "tighten" : "loosen");
    }
  }

  private multipleOf(o: Loc, n: Loc, os: Obj, ns: Obj): void {
    const om = typeof os.multipleOf === "number" ? os.multipleOf : undefined;
    const nm = typeof ns.multipleOf === "number" ? ns.multipleOf : undefined;
    if (om === nm) return;
    const what = `multipleOf ${om ?? "none"} -> ${nm ?? "none"}`;
    // Every multiple of om is a multiple of nm when om is a multiple of nm.
    const divides = (a: number, b: number) => Number.isInteger(a / b);
    const effect: Effect = nm === undefined ? "loosen" : om === undefined ? "tighten" : divides(om, nm) ? "loosen" : divides(nm, om) ? "tighten" : "both";
    this.effect(o, n, "multipleOf", what, effect);
  }

  /** minLength/maxLength, minItems/maxItems, minProperties/maxProperties. */
  private count(o: Loc, n: Loc, os: Obj, ns: Obj, kw: string, kind: "min" | "max"): void {
    const ov = typeof os[kw] === "number" ? (os[kw] as number) : undefined;
    const nv = typeof ns[kw] === "number" ? (ns[kw] as number) : undefined;
    if (ov === nv) return;
    const none = kind === "min" ? 0 : Infinity;
    const a = ov ?? none;
    const b = nv ?? none;
    if (a === b) return;
    const tighter = kind === "min" ? b > a : b < a;
    this.effect(o, n, kw, `${kw} ${ov ?? "none"} -> ${nv ?? "none"}`, tighter ? "tighten" : "loosen");
  }

  /** pattern, format: equal or not; a different one cannot be proved compatible. */
  private textConstraint(o: Loc, n: Loc, os: Obj, ns: Obj, kw: string): void {
    const ov = os[kw];
    const nv = ns[kw];
    if (canon(ov) === canon(nv)) return;
    const what = `${kw} ${show(ov)} -> ${show(nv)}`;
    if (ov === undefined) return this.effect(o, n, kw, `${kw} added (${show(nv)})`, "tighten");
    if (nv === undefined) return this.effect(o, n, kw, `${kw} removed (was ${show(ov)})`, "loosen");
    this.effect(o, n, kw, what, "unknown");
  }

  private arrays(o: Loc, n: Loc, os: Obj, ns: Obj): void {
    const op = Array.isArray(os.prefixItems) ? os.prefixItems : [];
    const np = Array.isArray(ns.prefixItems) ? ns.prefixItems : [];
    for (let i = 0; i < Math.max(op.length, np.length); i++) {
      const ol = i < op.length ? child(o, `prefixItems/${i}`, op[i]) : child(o, "items", os.items);
      const nl = i < np.length ? child(n, `prefixItems/${i}`, np[i]) : child(n, "items", ns.items);
      this.schema(ol, nl);
    }
    if ("items" in os || "items" in ns) this.schema(child(o, "items", os.items), child(n, "items", ns.items));
  }

  private objects(o: Loc, n: Loc, os: Obj, ns: Obj): void {
    const op = isObject(os.properties) ? os.properties : {};
    const np = isObject(ns.properties) ? ns.properties : {};
    const oreq = new Set(Array.isArray(os.required) ? (os.required as string[]) : []);
    const nreq = new Set(Array.isArray(ns.required) ? (ns.required as string[]) : []);
    const oadd = os.additionalProperties;
    const nadd = ns.additionalProperties;
    const u = this.use;
    const onOld = `${u.receiver} on ${u.oldVersion}`;
    for (const name of Object.keys(op)) {
      const ol = child(o, `properties/${esc(name)}`, op[name]);
      if (name in np) {
        this.schema(ol, child(n, `properties/${esc(name)}`, np[name]));
        continue;
      }
      // Removed.
      const what = `${u.part} field "${name}" removed`;
      const code = "code that passes or reads it stops compiling";
      const explicitOpen = nadd === true || isObject(nadd);
      if (u.dir === "in") {
        if (nadd === false) {
          if (u.strict) this.emit(ol, what, { wire: true, code: true }, `callers on ${u.oldVersion} still send it and the server on ${u.newVersion} rejects unknown properties; ${code}`);
          else this.emit(ol, what, { wire: false, code: true }, `${code} (on the wire the server drops it when callers on ${u.oldVersion} send it)`);
        } else {
          this.emit(ol, what, { wire: false, code: true }, `${code} (on the wire the server accepts it as an additional property)`);
          if (isObject(nadd)) this.schema(ol, child(n, "additionalProperties", nadd));
        }
      } else if (oreq.has(name)) {
        this.emit(ol, `required ${what}`, { wire: true, code: true }, `${onOld} require it; ${code}`);
      } else {
        this.emit(ol, what, { wire: false, code: true }, `${code} (safe on the wire: it was optional for ${u.receiver} on ${u.oldVersion})`);
        if (explicitOpen) this.schema(ol, child(n, "additionalProperties", nadd));
      }
    }
    for (const name of Object.keys(np)) {
      if (name in op) continue;
      const nl = child(n, `properties/${esc(name)}`, np[name]);
      const required = nreq.has(name);
      if (u.dir === "in") {
        if (required) {
          this.emit(nl, `new required ${u.part} field "${name}"`, { wire: true, code: true }, `callers on ${u.oldVersion} do not send it; callers that do not pass it stop compiling`);
        } else {
          this.emit(nl, `new optional ${u.part} field "${name}"`, { wire: false, code: false, addition: true }, `callers on ${u.oldVersion} do not send it, which is allowed`);
        }
        if (oadd === true || isObject(oadd)) this.schema(child(o, "additionalProperties", oadd), nl);
        continue;
      }
      if (required) {
        const who = u.part === "payload" ? `subscribers generated from ${u.newVersion} fail on events from publishers still on ${u.oldVersion}` : `callers generated from ${u.newVersion} fail against servers still on ${u.oldVersion}`;
        this.emit(nl, `new required ${u.part} field "${name}"`, { wire: true, code: true }, `${who}; ${u.builders} that do not set it stop compiling`);
      } else if (oadd === false) {
        if (u.strict) this.emit(nl, `new optional ${u.part} field "${name}"`, { wire: true, code: false }, `${onOld} reject unknown properties (unknownProperties: "reject")`);
        else this.emit(nl, `new optional ${u.part} field "${name}"`, { wire: false, code: false, addition: true }, `${onOld} drop it as an unknown property`);
      } else {
        this.emit(nl, `new optional ${u.part} field "${name}"`, { wire: false, code: false, addition: true }, `${onOld} accept it as an additional property`);
      }
      if (isObject(oadd)) this.schema(child(o, "additionalProperties", oadd), nl);
    }
    // required, for fields that stayed (or were never declared).
    const reqLoc = at(o, n, "required");
    for (const name of nreq) {
      if (oreq.has(name) || (name in np && !(name in op))) continue;
      if (u.dir === "in") {
        this.emit(reqLoc, `${u.part} field "${name}" now required`, { wire: true, code: true }, `callers on ${u.oldVersion} may omit it; callers that omit it stop compiling`);
      } else {
        const who = u.part === "payload" ? `subscribers generated from ${u.newVersion} fail on events from publishers on ${u.oldVersion} that omit it` : `callers generated from ${u.newVersion} fail against servers on ${u.oldVersion} that omit it`;
        this.emit(reqLoc, `${u.part} field "${name}" now required`, { wire: true, code: true }, `${who}; ${u.builders} that omit it stop compiling`);
      }
    }
    for (const name of oreq) {
      if (nreq.has(name) || (name in op && !(name in np))) continue;
      const code = `${u.readers} reading it now get undefined in its type and stop compiling`;
      if (u.dir === "in") this.emit(reqLoc, `${u.part} field "${name}" no longer required`, { wire: false, code: true }, `${code} (safe on the wire: the server accepts more)`);
      else this.emit(reqLoc, `${u.part} field "${name}" no longer required`, { wire: true, code: true }, `${onOld} require it; ${code}`);
    }
    this.additional(o, n, os, ns);
  }

  private additional(o: Loc, n: Loc, os: Obj, ns: Obj): void {
    const oa = os.additionalProperties;
    const na = ns.additionalProperties;
    if (canon(oa) === canon(na)) return;
    if (oa !== false && na !== false) {
      // Both open: absent and true allow anything; a schema constrains the extras.
      if (oa === undefined && na === true) return;
      if (oa === true && na === undefined) return;
      this.schema(child(o, "additionalProperties", oa), child(n, "additionalProperties", na));
      const typed = (v: unknown) => v === true || isObject(v);
      if (typed(oa) !== typed(na)) this.emit(at(o, n, "additionalProperties"), `additionalProperties ${show(oa)} -> ${show(na)}`, { wire: false, code: typed(oa) }, typed(oa) ? `${this.use.builders} passing extra properties stop compiling` : "the TypeScript type gains an index signature");
      return;
    }
    const u = this.use;
    const what = `additionalProperties ${show(oa)} -> ${show(na)}`;
    const loc = at(o, n, "additionalProperties");
    const openedTyped = na === true || isObject(na);
    if (oa === false) {
      // Opened: the new side accepts (in) or may send (out) extra properties.
      if (u.dir === "in") return this.emit(loc, what, { wire: false, code: false }, "the server accepts more");
      if (!openedTyped) return this.emit(loc, what, { wire: false, code: false }, `${u.sender} on ${u.newVersion} still send only declared properties (the generated type has none other)`);
      if (u.strict) return this.emit(loc, what, { wire: true, code: false }, `${u.sender} on ${u.newVersion} may send extra properties and ${u.receiver} on ${u.oldVersion} reject unknown properties`);
      return this.emit(loc, what, { wire: false, code: false }, `${u.receiver} on ${u.oldVersion} drop extra properties`);
    }
    // Closed.
    const code = oa === true || isObject(oa) ? `${u.builders} passing extra properties stop compiling` : undefined;
    if (u.dir === "out") return this.emit(loc, what, { wire: false, code: code !== undefined }, code ?? `${u.receiver} on ${u.oldVersion} accept less than before`);
    if (u.strict) return this.emit(loc, what, { wire: true, code: code !== undefined }, `callers on ${u.oldVersion} may send extra properties and the server on ${u.newVersion} rejects unknown properties${code ? `; ${code}` : ""}`);
    this.emit(loc, what, { wire: false, code: code !== undefined }, `${code ? `${code}; ` : ""}on the wire the server drops extra properties`);
  }

  /** anyOf / oneOf: a branch added loosens, a branch removed tightens. */
  private branches(o: Loc, n: Loc, os: Obj, ns: Obj, kw: string): void {
    const ob = Array.isArray(os[kw]) ? (os[kw] as unknown[]) : undefined;
    const nb = Array.isArray(ns[kw]) ? (ns[kw] as unknown[]) : undefined;
    if (ob === undefined && nb === undefined) return;
    if (ob === undefined) return this.effect(o, n, kw, `${kw} added`, "tighten", "the TypeScript type changes");
    if (nb === undefined) return this.effect(o, n, kw, `${kw} removed`, "loosen", "the TypeScript type changes");
    if (ob.length === nb.length) {
      for (let i = 0; i < ob.length; i++) this.schema(child(o, `${kw}/${i}`, ob[i]), child(n, `${kw}/${i}`, nb[i]));
      return;
    }
    const { removed, added } = this.matchLists(o, n, kw, ob, nb);
    if (removed.length === 0) return this.effect(o, n, kw, `${kw} branch added (${added.map((i) => `#${i}`).join(", ")})`, "loosen", undefined, true);
    if (added.length === 0) return this.effect(o, n, kw, `${kw} branch removed (old ${removed.map((i) => `#${i}`).join(", ")})`, "tighten", `${this.use.builders} building the removed branch stop compiling`);
    this.effect(o, n, kw, `${kw} branches changed`, "unknown", "the TypeScript union changes");
  }

  private allOf(o: Loc, n: Loc, os: Obj, ns: Obj): void {
    const ob = Array.isArray(os.allOf) ? os.allOf : [];
    const nb = Array.isArray(ns.allOf) ? ns.allOf : [];
    if (ob.length === 0 && nb.length === 0) return;
    if (ob.length === nb.length) {
      for (let i = 0; i < ob.length; i++) this.schema(child(o, `allOf/${i}`, ob[i]), child(n, `allOf/${i}`, nb[i]));
      return;
    }
    const { removed, added } = this.matchLists(o, n, "allOf", ob, nb);
    const code = "the TypeScript type changes";
    if (removed.length === 0) return this.effect(o, n, "allOf", "allOf entry added", "tighten", code);
    if (added.length === 0) return this.effect(o, n, "allOf", "allOf entry removed", "loosen", code);
    this.effect(o, n, "allOf", "allOf entries changed", "unknown", code);
  }

  /** Pairs equal entries of two schema lists (and compares what their `$ref`s reach); returns the indexes left over. */
  private matchLists(o: Loc, n: Loc, kw: string, ob: unknown[], nb: unknown[]): { removed: number[]; added: number[] } {
    const taken = new Set<number>();
    const removed: number[] = [];
    ob.forEach((b, i) => {
      const j = nb.findIndex((c, k) => !taken.has(k) && canon(c) === canon(b));
      if (j < 0) return removed.push(i);
      taken.add(j);
      this.schema(child(o, `${kw}/${i}`, b), child(n, `${kw}/${j}`, nb[j]));
    });
    const added = nb.map((_, k) => k).filter((k) => !taken.has(k));
    return { removed, added };
  }

  /** Records a change whose wire verdict follows from tightening/loosening and the direction. */
  private effect(o: Loc, n: Loc, kw: string | undefined, what: string, effect: Effect, code?: string, addition = false): void {
    const u = this.use;
    const loc = kw === undefined ? (n.schema !== undefined ? n : o) : at(o, n, kw);
    let wire: boolean;
    let why: string;
    if (effect === "unknown") {
      wire = true;
      why = "cannot prove compatible";
    } else if (u.dir === "in") {
      wire = effect !== "loosen";
      why = wire ? `callers on ${u.oldVersion} may send values the server on ${u.newVersion} refuses` : `the server on ${u.newVersion} accepts everything callers on ${u.oldVersion} may send`;
    } else {
      wire = effect !== "tighten";
      why = wire ? `${u.receiver} on ${u.oldVersion} may refuse what ${u.sender} on ${u.newVersion} may send` : `${u.receiver} on ${u.oldVersion} accept everything ${u.sender} on ${u.newVersion} may send`;
    }
    this.emit(loc, what, { wire, code: code !== undefined, addition: addition && !wire }, code !== undefined ? `${why}; ${code}` : why);
  }

  emit(loc: { file: LoadedFile; pointer: string }, what: string, verdict: { wire: boolean; code: boolean; addition?: boolean }, why: string): void {
    const suffix = this.via ? ` (via ${this.use.label})` : "";
    this.s.changes.push({
      service: this.use.service,
      wire: verdict.wire,
      code: verdict.code,
      addition: verdict.addition === true && !verdict.wire && !verdict.code,
      file: loc.file.display,
      pointer: loc.pointer,
      reason: `${what}: ${why}${suffix}`,
    });
  }
}
