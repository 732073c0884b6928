/** Where a `warren` command reads and prints; the bin passes the process's streams, tests may pass their own. */
export interface Io {
  readonly cwd: string;
  /** One line (or block) to stdout. */
  readonly out: (text: string) => void;
  /** One line to stderr. */
  readonly err: (text: string) => void;
  /** The whole of stdin, or `undefined` when stdin is a terminal (nothing piped). */
  readonly stdin: () => Promise<string | undefined>;
  /** Resolves when the user asks the command to stop (SIGINT or SIGTERM). */
  readonly interrupted: () => Promise<string>;
}
