/**
 * A strict JSON parser for contract files. Unlike `JSON.parse` it reports
 * syntax errors with line and column, refuses duplicate keys (a repeated method
 * name would otherwise silently replace the first) and refuses the key
 * `__proto__`, which would set an object's prototype in generated code.
 */
import { CodegenError, pointerJoin } from "./errors.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Parses `text` (the contents of `file`) or throws a {@link CodegenError}. */
export function parseJson(text: string, file: string): unknown {
  return new Parser(text, file).parseDocument();
}

const ESCAPES: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

class Parser {
  #i = 0;
  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {}

  parseDocument(): Json {
    if (this.text.charCodeAt(0) === 0xfeff) this.#i = 1;
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
    while (/[ \t\r\n]/.test(this.text[this.#i] ?? "")) this.#i++;
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
      if (key === "__proto__") throw new CodegenError(this.file, child, 'the key "__proto__" is not allowed');
      if (Object.hasOwn(out, key)) {
        const { line } = this.position(keyAt);
        throw new CodegenError(this.file, child, `duplicate key "${key}" (line ${line}); JSON keeps only the last one`);
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

  private position(at: number): { line: number; column: number } {
    const before = this.text.slice(0, at);
    return { line: before.split("\n").length, column: at - before.lastIndexOf("\n") };
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
      out.push(this.value(pointerJoin(pointer, out.length)));
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
