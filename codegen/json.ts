/**
 * A strict JSON parser for contract files. Unlike `JSON.parse` it reports
 * syntax errors with line and column, refuses duplicate keys (a repeated method
 * name would otherwise silently replace the first) and refuses the key
 * `__proto__`, which would set an object's prototype in generated code.
 */
import { CodegenError, pointerJoin, type Position } from "./errors.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Parses `text` (the contents of `file`) or throws a {@link CodegenError}. */
export function parseJson(text: string, file: string): unknown {
  return new Parser(text, file).parseDocument();
}

/** A parsed document and where each of its values starts. */
export interface ParsedDocument {
  readonly value: unknown;
  /**
   * JSON pointer -> 1-based line and column: of the member's key for an
   * object member, of the value itself for an array element and the root.
   */
  readonly positions: ReadonlyMap<string, Position>;
}

/** {@link parseJson} that also records the position of every value, for messages. */
export function parseJsonDocument(text: string, file: string): ParsedDocument {
  const parser = new Parser(text, file, new Map());
  const value = parser.parseDocument();
  return { value, positions: parser.positions! };
}

const ESCAPES: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

class Parser {
  #i = 0;
  /** Start of each line after the first, filled on demand for positions. */
  #lineStarts: number[] | undefined;
  constructor(
    private readonly text: string,
    private readonly file: string,
    readonly positions?: Map<string, Position>,
  ) {}

  parseDocument(): Json {
    if (this.text.charCodeAt(0) === 0xfeff) this.#i = 1;
    this.ws();
    this.positions?.set("", this.position(this.#i));
    const value = this.value("");
    this.ws();
    if (this.#i < this.text.length) this.fail("unexpected text after the JSON value");
    return value;
  }

  private fail(reason: string, at = this.#i): never {
    const { line, column } = this.position(at);
    const found = at >= this.text.length ? "end of file" : JSON.stringify(this.text[at]);
    throw new CodegenError(this.file, "", `invalid JSON: ${reason} (found ${found})`, { line, column });
  }

  private ws(): void {
    for (let c = this.text.charCodeAt(this.#i); c === 32 || c === 9 || c === 10 || c === 13; c = this.text.charCodeAt(++this.#i));
  }

  private value(pointer: string): Json {
    this.ws();
    const c = this.text[this.#i];
    if (c === "{") return this.object(pointer);
    if (c === "[") return this.array(pointer);
    if (c === '"') return this.string();
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.number();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (this.text.startsWith(word, this.#i)) {
        this.#i += word.length;
        return v;
      }
    }
    return this.fail("expected a value");
  }

  private object(pointer: string): Json {
    const out: { [key: string]: Json } = {};
    this.#i++;
    this.ws();
    if (this.text[this.#i] === "}") {
      this.#i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.text[this.#i] !== '"') this.fail("expected a property name in double quotes");
      const keyAt = this.#i;
      const key = this.string();
      const child = pointerJoin(pointer, key);
      const first = this.positions?.get(child);
      if (!Object.hasOwn(out, key)) this.positions?.set(child, this.position(keyAt));
      if (key === "__proto__") throw new CodegenError(this.file, child, 'the key "__proto__" is not allowed', this.position(keyAt));
      if (Object.hasOwn(out, key)) {
        throw new CodegenError(this.file, child, `duplicate key "${key}"${first === undefined ? "" : ` (first at line ${first.line})`}; JSON keeps only the last one`, this.position(keyAt));
      }
      this.ws();
      if (this.text[this.#i] !== ":") this.fail("expected ':' after the property name");
      this.#i++;
      out[key] = this.value(child);
      this.ws();
      const c = this.text[this.#i++];
      if (c === "}") return out;
      if (c !== ",") this.fail("expected ',' or '}' after a property value", this.#i - 1);
    }
  }

  private position(at: number): Position {
    if (this.#lineStarts === undefined) {
      this.#lineStarts = [0];
      for (let i = this.text.indexOf("\n"); i >= 0; i = this.text.indexOf("\n", i + 1)) this.#lineStarts.push(i + 1);
    }
    const starts = this.#lineStarts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= at) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: at - starts[lo]! + 1 };
  }

  private array(pointer: string): Json {
    const out: Json[] = [];
    this.#i++;
    this.ws();
    if (this.text[this.#i] === "]") {
      this.#i++;
      return out;
    }
    for (;;) {
      const child = pointerJoin(pointer, out.length);
      if (this.positions) {
        this.ws();
        this.positions.set(child, this.position(this.#i));
      }
      out.push(this.value(child));
      this.ws();
      const c = this.text[this.#i++];
      if (c === "]") return out;
      if (c !== ",") this.fail("expected ',' or ']' after an array element", this.#i - 1);
    }
  }

  private string(): string {
    let out = "";
    this.#i++;
    for (;;) {
      const c = this.text[this.#i];
      if (c === undefined) this.fail("unterminated string");
      if (c === '"') {
        this.#i++;
        return out;
      }
      if (c < " ") this.fail("control character in string (escape it)");
      if (c !== "\\") {
        out += c;
        this.#i++;
        continue;
      }
      const e = this.text[this.#i + 1] ?? "";
      if (e === "u") {
        const hex = this.text.slice(this.#i + 2, this.#i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("invalid \\u escape", this.#i);
        out += String.fromCharCode(parseInt(hex, 16));
        this.#i += 6;
      } else if (Object.hasOwn(ESCAPES, e)) {
        out += ESCAPES[e];
        this.#i += 2;
      } else {
        this.fail("invalid escape in string", this.#i);
      }
    }
  }

  private number(): number {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.text.slice(this.#i, this.#i + 400));
    if (!m) return this.fail("invalid number");
    this.#i += m[0].length;
    return Number(m[0]);
  }
}
