/**
 * Errors of the generator. Every refusal names the file, a JSON pointer into it
 * and the reason; the CLI prints them one per line, never with a stack.
 */

/** One problem in one contract file. */
export class CodegenError extends Error {
  /** File path as shown to the user, relative to the working directory (posix separators). */
  readonly file: string;
  /** JSON pointer into the file (`""` for the whole file), or a `line:column` position for syntax errors. */
  readonly pointer: string;
  /** 1-based line and column, for JSON syntax errors. */
  readonly position: { readonly line: number; readonly column: number } | undefined;

  constructor(file: string, pointer: string, message: string, position?: { line: number; column: number }) {
    super(message);
    this.name = "CodegenError";
    this.file = file;
    this.pointer = pointer;
    this.position = position;
  }

  /** `schemas/x.service.json#/methods/add/request: reason`, or `file:line:col: reason` for syntax errors. */
  format(): string {
    if (this.position) return `${this.file}:${this.position.line}:${this.position.column}: ${this.message}`;
    return `${this.file}#${this.pointer}: ${this.message}`;
  }
}

/** Several {@link CodegenError}s found in one run; generation writes nothing when any exist. */
export class CodegenErrors extends Error {
  readonly errors: readonly CodegenError[];

  constructor(errors: readonly CodegenError[]) {
    super(errors.map((e) => e.format()).join("\n"));
    this.name = "CodegenErrors";
    this.errors = errors;
  }
}

/** Collects errors while a stage keeps going, so one run reports every problem it can. */
export class ErrorSink {
  readonly errors: CodegenError[] = [];

  add(file: string, pointer: string, message: string): void {
    this.errors.push(new CodegenError(file, pointer, message));
  }

  /** Throws a {@link CodegenErrors} if anything was collected. */
  throwIfAny(): void {
    if (this.errors.length > 0) throw new CodegenErrors(this.errors);
  }
}

/** Appends one reference token to a JSON pointer, escaping `~` and `/` (RFC 6901). */
export function pointerJoin(pointer: string, token: string | number): string {
  return `${pointer}/${String(token).replace(/~/g, "~0").replace(/\//g, "~1")}`;
}
