/**
 * Printing helpers of the emitters: declarations are assembled as plain
 * strings, in exactly the shape ts-morph's printer and TypeScript's formatter
 * gave them (the fixture snapshots hold every byte). Only the output of
 * json-schema-to-typescript still goes through TypeScript's formatter
 * ({@link formatTypeScript}): it comes unindented and without semicolons.
 */
import { ts } from "ts-morph";

/** Formatting of the generated files that pass through the formatter. */
export const FORMAT = {
  indentSize: 2,
  tabSize: 2,
  convertTabsToSpaces: true,
  ensureNewLineAtEndOfFile: true,
  semicolons: ts.SemicolonPreference.Insert,
} as const;

/**
 * FORMAT completed the way ts-morph completed it (its defaults for two-space
 * indentation, LF newlines and double quotes), so output stays byte-identical
 * to what `SourceFile.formatText(FORMAT)` printed.
 */
const SETTINGS: ts.FormatCodeSettings = {
  ...FORMAT,
  newLineCharacter: "\n",
  indentStyle: ts.IndentStyle.Smart,
  insertSpaceAfterOpeningAndBeforeClosingNonemptyBraces: true,
  insertSpaceAfterCommaDelimiter: true,
  insertSpaceAfterConstructor: false,
  insertSpaceAfterSemicolonInForStatements: true,
  insertSpaceAfterKeywordsInControlFlowStatements: true,
  insertSpaceAfterOpeningAndBeforeClosingNonemptyBrackets: false,
  insertSpaceAfterOpeningAndBeforeClosingTemplateStringBraces: false,
  insertSpaceAfterOpeningAndBeforeClosingJsxExpressionBraces: false,
  insertSpaceBeforeFunctionParenthesis: false,
  insertSpaceBeforeAndAfterBinaryOperators: true,
  placeOpenBraceOnNewLineForFunctions: false,
  placeOpenBraceOnNewLineForControlBlocks: false,
};

const FILE = "/format.ts";
let current = "";
let version = 0;
let service: ts.LanguageService | undefined;

/**
 * `text` formatted by TypeScript's formatter with {@link FORMAT}: one parse
 * and one formatting pass, in a syntax-only language service kept for the
 * process (no program, no type checking).
 */
export function formatTypeScript(text: string): string {
  current = text;
  version++;
  service ??= ts.createLanguageService(
    {
      getCompilationSettings: () => ({ target: ts.ScriptTarget.Latest }),
      getScriptFileNames: () => [FILE],
      getScriptVersion: () => String(version),
      getScriptSnapshot: (name) => (name === FILE ? ts.ScriptSnapshot.fromString(current) : undefined),
      getCurrentDirectory: () => "/",
      getDefaultLibFileName: () => "lib.d.ts",
      fileExists: (name) => name === FILE,
      readFile: (name) => (name === FILE ? current : undefined),
    },
    undefined,
    ts.LanguageServiceMode.Syntactic,
  );
  const edits = service.getFormattingEditsForDocument(FILE, SETTINGS);
  // Applied in position order, ties in the order given (as ts-morph applies them).
  const sorted = edits.map((edit, index) => ({ edit, index })).sort((a, b) => a.edit.span.start - b.edit.span.start || a.index - b.index);
  const parts: string[] = [];
  let at = 0;
  for (const { edit } of sorted) {
    parts.push(text.slice(at, edit.span.start), edit.newText);
    at = edit.span.start + edit.span.length;
  }
  parts.push(text.slice(at));
  const out = parts.join("");
  return (out.endsWith("\n") ? out : `${out}\n`).replace(/\r?\n/g, "\n");
}

/** The last touches every generated file gets: no leading blank lines, no trailing blanks (json-schema-to-typescript leaves some in doc comments), at most one blank line in a row. */
export function tidy(text: string): string {
  // Strings never span lines, so the trailing-blank rule only touches comments.
  return text.replace(/^\n+/, "").replace(/[ \t]+$/gm, "").replace(/\n{3,}/g, "\n\n");
}

/** A JSDoc block as ts-morph prints `docs: [text]`: one line when the text is, else one ` * ` line per line. */
export function docComment(text: string, indent = ""): string {
  const lines = text.split(/\r?\n/);
  if (lines.length <= 1) {
    const line = lines[0] ?? "";
    return `${indent}/** ${line}${line.endsWith(" ") ? "" : " "}*/\n`;
  }
  const body = lines.slice(lines[0] === "" ? 1 : 0).map((l) => `${indent} *${l.length > 0 ? ` ${l}` : ""}\n`);
  return `${indent}/**\n${body.join("")}${indent} */\n`;
}

/** `import { a, b } from "m";` (or `import type`), one line. */
export function importLine(names: readonly string[], from: string, typeOnly = false): string {
  return `import ${typeOnly ? "type " : ""}{ ${names.join(", ")} } from ${quote(from)};\n`;
}

/** `export { a, b } from "m";` (or `export type`), one line. */
export function exportLine(names: readonly string[], from: string, typeOnly = false): string {
  return `export ${typeOnly ? "type " : ""}{ ${names.join(", ")} } from ${quote(from)};\n`;
}

/** A module specifier in double quotes, escaped as ts-morph's writer escapes it. */
function quote(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"' || c === "\\") out += "\\";
    else if (c === "\r" && text[i + 1] === "\n") {
      out += "\\r\\n\\";
      i++;
    } else if (c === "\n") out += "\\n\\";
    out += text[i];
  }
  return `"${out}"`;
}

/** A parameter list: `a: A, b?: B`. */
export function params(list: ReadonlyArray<readonly [name: string, type: string, optional?: boolean]>): string {
  return list.map(([name, type, optional]) => `${name}${optional ? "?" : ""}: ${type}`).join(", ");
}
