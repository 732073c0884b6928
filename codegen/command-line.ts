/**
 * The generator's command lines (`warren-codegen`, `warren-codegen breaking`)
 * on node's `parseArgs`, with mistakes worded as the `warren` command
 * (commander) words them: one line naming the option or argument, a
 * did-you-mean for a misspelt option or command, never parseArgs' own
 * multi-line messages or a stack.
 */
import { parseArgs } from "node:util";
import { closest } from "./suggest.js";

/** One option of a command line. */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  /** Repeatable: the values are collected into an array. */
  readonly multiple?: boolean;
  /** The value's name in messages, `dir` in `option '--out <dir>' argument missing`; string options only. */
  readonly value?: string;
}

/** The values of a parsed command line: a boolean is `true` or absent; a repeatable option an array or absent. */
export type FlagValues<S extends Readonly<Record<string, FlagSpec>>> = {
  readonly [K in keyof S]?: S[K]["type"] extends "boolean" ? true : S[K]["multiple"] extends true ? string[] : string;
};

/** A command line, parsed or refused. */
export type Parsed<S extends Readonly<Record<string, FlagSpec>>> = { readonly values: FlagValues<S>; readonly problem?: undefined } | { readonly problem: string };

/**
 * Parses `argv` for a command that takes the options of `spec` and no
 * positional arguments. `commands` are the subcommand names a misspelt first
 * argument is compared with. The problem, if any, is the first one in `argv`:
 * an unknown option (`unknown option '--chek'; did you mean --check?`), a
 * missing or empty value (`option '--out <dir>' argument missing`; a value
 * taken from the next argument may not start with "-": write `--out=-x`), a
 * value given to a switch, or an argument (`unexpected argument 'x'`, or
 * `unknown command 'brekaing'; did you mean breaking?`).
 */
export function parseFlags<S extends Readonly<Record<string, FlagSpec>>>(argv: readonly string[], spec: S, commands: readonly string[] = []): Parsed<S> {
  const options = Object.fromEntries(Object.entries(spec).map(([name, f]) => [name, { type: f.type, ...(f.short === undefined ? {} : { short: f.short }) }]));
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const values: Record<string, true | string | string[]> = {};
  for (const token of tokens) {
    if (token.kind === "option-terminator") continue;
    if (token.kind === "positional") {
      const command = token.index === 0 ? closest(token.value, commands) : undefined;
      return { problem: command === undefined ? `unexpected argument '${token.value}'` : `unknown command '${token.value}'; did you mean ${command}?` };
    }
    const flag = Object.hasOwn(spec, token.name) ? spec[token.name] : undefined;
    if (flag === undefined) {
      // parseArgs splits `-check` into -c -h -e…: name the argument as written.
      const raw = token.rawName.startsWith("--") ? token.rawName : argv[token.index]!.split("=")[0]!;
      const bare = raw.replace(/^-+/, "");
      const match = Object.hasOwn(spec, bare) ? bare : closest(bare, Object.keys(spec));
      return { problem: `unknown option '${raw}'${match === undefined ? "" : `; did you mean --${match}?`}` };
    }
    if (flag.type === "boolean") {
      if (token.value !== undefined) return { problem: `option '--${token.name}' takes no value (got '${token.value}')` };
      values[token.name] = true;
      continue;
    }
    if (token.value === undefined || token.value === "" || (!token.inlineValue && token.value.startsWith("-"))) {
      return { problem: `option '--${token.name} <${flag.value ?? "value"}>' argument missing` };
    }
    if (flag.multiple) values[token.name] = [...((values[token.name] as string[] | undefined) ?? []), token.value];
    else values[token.name] = token.value;
  }
  return { values: values as FlagValues<S> };
}

/** The bin a generator command was run from: its own, or the `warren` command's `codegen` and `breaking`. */
export type Program = "warren-codegen" | "warren";

/**
 * A generator command as the user typed it, for the start of its messages and
 * its help hint: `warren-codegen`, `warren-codegen breaking`, or, run from the
 * `warren` bin, `warren codegen`, `warren breaking`.
 */
export function commandName(program: Program | undefined, command: "codegen" | "breaking"): string {
  if (program === "warren") return `warren ${command}`;
  return command === "codegen" ? "warren-codegen" : "warren-codegen breaking";
}
