/**
 * Errors of the generator. Every refusal names the file, its line and column,
 * a JSON pointer into it and the reason; the CLI prints them one per line,
 * never with a stack.
 */

/** A 1-based line and column in a contract file. */
export interface Position {
  readonly line: number;
  readonly column: number;
}

/** Where a JSON pointer of a file starts, when known. */
export type Locator = (file: string, pointer: string) => Position | undefined;

/** One problem in one contract file. */
export class CodegenError extends Error {
  /** File path as shown to the user, relative to the working directory (posix separators). */
  readonly file: string;
  /** JSON pointer into the file (`""` for the whole file), or a `line:column` position for syntax errors. */
  readonly pointer: string;
  /** 1-based line and column: of the pointer's value (or the nearest enclosing one), or of a JSON syntax error. */
  readonly position: Position | undefined;

  constructor(file: string, pointer: string, message: string, position?: Position) {
    super(message);
    this.name = "CodegenError";
    this.file = file;
    this.pointer = pointer;
    this.position = position;
  }

  /**
   * `schemas/x.service.json:12:9 #/methods/add/request: reason`; for the
   * whole file or a syntax error `file:line:col: reason`; without a position
   * `file#pointer: reason`.
   */
  format(): string {
    if (this.position === undefined) return this.pointer === "" ? `${this.file}: ${this.message}` : `${this.file}#${this.pointer}: ${this.message}`;
    const at = `${this.file}:${this.position.line}:${this.position.column}`;
    return this.pointer === "" ? `${at}: ${this.message}` : `${at} #${this.pointer}: ${this.message}`;
  }

  /** This error with a position looked up by `locate`, unless it has one. */
  located(locate: Locator | undefined): CodegenError {
    if (this.position !== undefined || locate === undefined) return this;
    const position = locateNearest(locate, this.file, this.pointer);
    return position === undefined ? this : new CodegenError(this.file, this.pointer, this.message, position);
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

  /** `locate` gives each error the line and column of its pointer. */
  constructor(private readonly locate?: Locator) {}

  add(file: string, pointer: string, message: string): void {
    this.errors.push(new CodegenError(file, pointer, message).located(this.locate));
  }

  /** Adds an error made elsewhere, locating it if it has no position. */
  push(error: CodegenError): void {
    this.errors.push(error.located(this.locate));
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

/** The position of `pointer`, else of its nearest enclosing value that has one. */
function locateNearest(locate: Locator, file: string, pointer: string): Position | undefined {
  for (let p = pointer; ; p = p.slice(0, p.lastIndexOf("/"))) {
    const position = locate(file, p);
    if (position !== undefined || p === "") return position;
  }
}
