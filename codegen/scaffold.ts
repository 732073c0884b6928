/**
 * `--scaffold DIR`: a starting implementation per service, written once and
 * never overwritten — it is the user's file from then on.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { IndentationText, Project, QuoteKind, VariableDeclarationKind } from "ts-morph";
import { FORMAT } from "./emit.js";
import { toPosix } from "./load.js";
import type { ServiceModel } from "./model.js";
import { scaffoldHandlersName } from "./naming.js";
import { docText, stringLiteral } from "./text.js";

/** Where the scaffold goes and how it imports the runtime and the generated code (paths relative to `cwd`). */
export interface ScaffoldOptions {
  readonly cwd: string;
  readonly scaffoldDir: string;
  readonly outDir: string;
  /** Runtime specifier as generated code uses it (relative to `<out>/<service>/`, or a package name). */
  readonly runtime: string;
}

/** Writes `<dir>/<service-kebab>.ts` for each service that has none; returns the paths written (relative to cwd). */
export async function writeScaffolds(services: readonly ServiceModel[], options: ScaffoldOptions): Promise<string[]> {
  const dir = path.resolve(options.cwd, options.scaffoldDir);
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const s of services) {
    const target = path.join(dir, `${s.names.dir}.ts`);
    try {
      await writeFile(target, scaffoldText(s, dir, options), { flag: "wx" });
      written.push(toPosix(path.relative(options.cwd, target)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
  return written;
}

/** Module specifier of `target` (absolute) as imported from a file in `fromDir`. */
function specifier(fromDir: string, target: string): string {
  const rel = toPosix(path.relative(fromDir, target));
  return rel.startsWith(".") ? rel : `./${rel}`;
}

/** The scaffold source of one service. */
export function scaffoldText(s: ServiceModel, dir: string, options: ScaffoldOptions): string {
  const serviceDir = path.resolve(options.cwd, options.outDir, s.names.dir);
  const runtime = options.runtime.startsWith(".") ? specifier(dir, path.resolve(serviceDir, options.runtime)) : options.runtime;
  const project = new Project({ useInMemoryFileSystem: true, manipulationSettings: { indentationText: IndentationText.TwoSpaces, quoteKind: QuoteKind.Double } });
  const file = project.createSourceFile("/scaffold.ts", "");
  if (s.methods.length > 0) file.addImportDeclaration({ moduleSpecifier: runtime, namedImports: ["RpcError"] });
  file.addImportDeclaration({ isTypeOnly: true, moduleSpecifier: specifier(dir, path.join(serviceDir, "index.js")), namedImports: [s.names.handlers] });
  const methods = s.methods.map(
    (m) => `  ${m.tsName}(_request, _ctx) {\n    throw new RpcError("unimplemented", ${stringLiteral(`${s.name}.${m.wireName} is not implemented`)});\n  },\n`,
  );
  file.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: [docText(`Handlers of ${s.name}: ${s.description}`)],
    declarations: [{ name: scaffoldHandlersName(s.name), type: s.names.handlers, initializer: `{\n${methods.join("")}}` }],
  });
  file.formatText(FORMAT);
  return `// Starting implementation of ${s.name}, written once by warren codegen --scaffold. Yours to edit.\n${file.getFullText()}`;
}
