/**
 * The `warren` command line: `call`, `list`, `describe`, `serve --mock`,
 * `docs`, `dlq list|show|replay|purge`, and the generator's commands
 * (`codegen`, `breaking`) under the same name. Built on commander: one help
 * style, did-you-mean for commands and flags; every mistake ends as one line
 * on stderr and a documented status (codegen/cli/exit.ts), never a stack.
 */
import { Command, CommanderError, Option } from "commander";
import packageJson from "../package.json" with { type: "json" };
import { runCall } from "./call.js";
import { runDescribe, runList } from "./catalog.js";
import { runDlq, type DlqAction } from "./dlq.js";
import { runDocs } from "./docs.js";
import { CliError, Exit, oneLine } from "./exit.js";
import type { Io } from "./io.js";
import { runServe } from "./serve.js";

export type { Io } from "./io.js";

const CONTRACT_HELP = "contracts directory (default: the config file's \"schemas\", else schemas)";
const URL_HELP = "broker address (default: $AMQP_URL, else amqp://guest:guest@127.0.0.1:5672)";

function contractOptions(cmd: Command): Command {
  return cmd.option("--schemas <dir>", CONTRACT_HELP).option("--config <file>", "read this warren.config.json instead of searching upward");
}

function brokerOptions(cmd: Command): Command {
  return cmd.option("--url <url>", URL_HELP);
}

const EXIT_HELP = `
exit statuses:
  0  success                       10  the service answered with a declared error
  1  unexpected failure            11  invalid_request   12  invalid_response
  2  usage: bad command line,      13  bad_message       14  unknown_method
     unknown name, bad JSON        15  internal          16  unimplemented
  3  contracts cannot be read      17  incompatible_version
  4  broker unreachable/refused    19  a code your contract does not declare (a newer server's?)
  5  queue does not exist          20  timeout  21  no_server  22  connection_lost
                                   23  canceled 24  access_refused  25  setup_failed
                                   26  rejected 27  invalid_event   28  unauthenticated
                                   29  permission_denied  30  idempotency_conflict`;

/** Builds the program; actions store the status they end with in `status`. */
function program(io: Io, state: { status: number; errors: string[] }): Command {
  const set = (p: Promise<number>) => p.then((s) => void (state.status = s));
  const root = new Command("warren")
    .description("Call, inspect, mock and document warren services from their contracts; generate code; tend dead letters.")
    .version(`warren ${packageJson.version}`, "--version", "print the version")
    .helpOption("-h, --help", "print help")
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n+$/, "")),
      writeErr: (s) => io.err(s.replace(/\n+$/, "")),
      outputError: (s) => void state.errors.push(s),
    })
    // Commander checks required options before unknown ones, and counts surplus arguments without naming them:
    // the few required ones are checked by the commands, and this hook names a surplus argument or an empty value.
    .allowExcessArguments(true)
    .hook("preAction", (_root, command) => {
      const extra = command.args[command.registeredArguments.length];
      if (extra !== undefined) command.error(`error: unexpected argument '${extra}'`, { code: "commander.excessArguments" });
      const empty = command.options.find((o) => command.getOptionValue(o.attributeName()) === "");
      if (empty !== undefined) command.error(`error: option '${empty.flags}' argument missing`, { code: "commander.optionMissingArgument" });
    })
    .addHelpText("after", `
examples:
  warren list                                      services, methods, events, queues on the broker
  warren describe Calculator.divide                schemas, errors, timeout of one method
  warren call Calculator.add '{"a":1,"b":2}'       call it; the response is printed as JSON
  echo '{"a":1,"b":2}' | warren call Calculator.add
  warren serve --mock Calculator                   answer from the contract's examples
  warren docs --out api/                           AsyncAPI 3 document and Markdown reference
  warren dlq list Orders.order_placed --group billing
  warren codegen --check                           the generator (same flags as warren-codegen)
  warren breaking --against origin/main            classify contract changes
${EXIT_HELP}`);

  brokerOptions(
    contractOptions(
      root
        .command("call")
        .description("call a method; the request (JSON argument or stdin) is checked against the contract before anything is sent")
        .argument("<Service.method>", "the method, e.g. Calculator.add")
        .argument("[json]", "the request as JSON; read from stdin when absent")
        .option("--timeout <ms>", "call budget in ms (default: the method's timeoutMs, else 30000)")
        .option("-H, --header <name=value>", "AMQP header to send (repeatable)", (v: string, all: string[] = []) => [...all, v])
        .option("--compact", "print the response on one line")
        .option("--wait-for-server", "when the service's queue has no consumer, wait for a server within the timeout instead of failing with no_server at once"),
    ),
  ).action((target: string, json: string | undefined, flags) => set(runCall(target, json, flags, io)));

  brokerOptions(
    contractOptions(
      root
        .command("list")
        .description("services, methods and events of the contracts; with the broker: whether each queue exists and its consumers")
        .option("--offline", "do not ask the broker")
        .option("--json", "print JSON"),
    ),
  ).action((flags) => set(runList(flags, io)));

  contractOptions(
    root
      .command("describe")
      .description("a service, method or event: schemas, examples, errors, timeout, idempotency, queue, events")
      .argument("<Service[.member]>", "a service, or one of its methods or events")
      .option("--json", "print JSON"),
  ).action((target: string, flags) => set(runDescribe(target, flags, io)));

  brokerOptions(
    contractOptions(
      root
        .command("serve")
        .description("serve a mock of a service: every method answers with its response schema's examples, else generated sample data")
        .argument("[Service]", "the service (or use --mock Service)")
        .option("--mock [Service]", "serve mock handlers (required: the only kind of server this command runs)")
        .option("--queue <name>", "consume this queue instead of the contract's")
        .option("--quiet", "do not print a line per request"),
    ),
  ).action((service: string | undefined, flags) => set(runServe(service, flags, io)));

  contractOptions(
    root
      .command("docs")
      .description("write an AsyncAPI 3.0.0 document and a Markdown reference of every contract")
      .option("--out <dir>", "write asyncapi.json and reference.md into this directory (default: print to stdout)")
      .addOption(new Option("--format <format>", "what to print without --out").choices(["asyncapi", "markdown"]).default("asyncapi"))
      .option("--server <url>", "broker the AsyncAPI document names (default: $AMQP_URL, else amqp://127.0.0.1:5672; no password is written)"),
  ).action((flags) => set(runDocs(flags, io)));

  const dlq = root
    .command("dlq")
    .description("dead letters of an event subscription: list, show, replay to the original exchange, purge")
    .addHelpText("after", `
The dead-letter queue is <exchange>.<event>.<group>.dead for a consumer group and
<exchange>.<event>.dead for broadcast subscribers (docs/PROTOCOL.md), or --queue NAME.
list and show browse: they take messages without acknowledging them and give them back
(nack with requeue), so nothing is lost; RabbitMQ puts them back in their place but marks
them redelivered.`);
  const dlqCommand = (name: DlqAction, description: string, extra: (c: Command) => Command = (c) => c) =>
    brokerOptions(
      contractOptions(
        extra(
          dlq
            .command(name)
            .description(description)
            .argument("[Service.event]", "the subscription's event (or --queue)")
            .option("--group <group>", "the consumer group (default: a broadcast subscription)")
            .option("--queue <name>", "the dead-letter queue itself"),
        ),
      ),
    ).action((...all: unknown[]) => {
      const cmd = all[all.length - 1] as Command;
      const positional = (cmd.processedArgs as Array<string | undefined>).filter((a): a is string => a !== undefined);
      return set(runDlq(name, positional, cmd.opts(), io));
    });
  dlqCommand("list", "list dead letters with their reasons and attempts (browses; nothing is removed)", (c) =>
    c.option("--limit <n>", "at most this many (default: 100)").option("--json", "print JSON"),
  );
  dlqCommand("show", "show one dead letter in full: properties, headers, body", (c) => c.argument("[n|message-id]", "its number in `dlq list`, or its message id").option("--json", "print JSON"));
  dlqCommand("replay", "publish dead letters again to the exchange and routing key they were first published with, then remove them", (c) =>
    c
      .option("--dry-run", "print what would be replayed; change nothing")
      .option("--limit <n>", "at most this many (default: all)")
      .option("--id <message-id>", "only the dead letter with this message id"),
  );
  dlqCommand("purge", "delete every dead letter of the queue", (c) => c.option("--yes", "really delete them (required)"));

  // The generator's commands, declared here so that their help and mistakes look like every other command's.
  const generator = (args: string[]) => set(runGenerator(args, io));
  const repeat = (v: string, all: string[] = []) => [...all, v];
  contractOptions(
    root
      .command("codegen")
      .description("generate typed clients, server skeletons, publishers and subscribers from the contracts (the same as warren-codegen)")
      .option("--out <dir>", "where generated code goes (default: the config file's \"out\", else generated)")
      .option("--runtime <path>", "how generated code imports the runtime, as seen from <out>/<service>/ (default: the config file's \"runtime\", else warren)")
      .option("--check", "exit 1 if <out> differs from what the contracts produce; write nothing")
      .option("--watch", "regenerate on every change to the contracts until Ctrl-C")
      .option("--scaffold <Service>", "also write a starting implementation of a service (repeatable; never overwrites)", repeat)
      .option("--scaffold-dir <dir>", "where --scaffold writes (default: the config file's \"scaffold\", else src/services)"),
  ).action((flags: Record<string, unknown>) => {
    const args: string[] = [];
    for (const [name, flag] of [["schemas", "--schemas"], ["config", "--config"], ["out", "--out"], ["runtime", "--runtime"], ["scaffoldDir", "--scaffold-dir"]] as const) {
      if (typeof flags[name] === "string") args.push(flag, flags[name] as string);
    }
    if (flags.check === true) args.push("--check");
    if (flags.watch === true) args.push("--watch");
    for (const service of (flags.scaffold as string[] | undefined) ?? []) args.push("--scaffold", service);
    return generator(args);
  });
  root
    .command("breaking")
    .description("compare the contracts with another version (a git ref or a directory) and classify every change as wire-breaking, code-breaking or safe")
    .option("--against <ref>", "the old contracts (required): a git ref (main, origin/main, HEAD~1, v1.2.0) or a schemas directory")
    .option("--schemas <dir>", "the new contracts (default: the config file's \"schemas\", else schemas)")
    .option("--check-version", "also check each service's version bump against its changes")
    .addHelpText("after", "\nprints one line per change: \"wire|code|wire+code|safe  <file>#<pointer>: <reason>\"; exit 1 on a wire-breaking change unless the major version was raised (docs/EVOLUTION.md)")
    .action((flags: { against?: string; schemas?: string; checkVersion?: boolean }) =>
      generator(["breaking", ...(flags.against === undefined ? [] : ["--against", flags.against]), ...(flags.schemas === undefined ? [] : ["--schemas", flags.schemas]), ...(flags.checkVersion === true ? ["--check-version"] : [])]),
    );
  return root;
}

/**
 * Runs the generator's own command line (codegen/run.ts), loaded only now: it brings ts-morph, which the other commands do not need.
 * Its messages name the command as typed here (`warren codegen: …`, `warren breaking: …`).
 */
async function runGenerator(args: readonly string[], io: Io): Promise<number> {
  const { runCli } = await import("../run.js");
  return runCli(args, { cwd: io.cwd, out: io.out, err: io.err, program: "warren" });
}

/** The command `argv` runs, as the path from the root: `[warren, dlq, show]`. */
function commandOf(root: Command, argv: readonly string[]): Command[] {
  const path = [root];
  for (const arg of argv) {
    if (arg.startsWith("-")) continue;
    const sub = path.at(-1)!.commands.find((c) => c.name() === arg);
    if (sub === undefined) break;
    path.push(sub);
  }
  return path;
}

/** Commander's message in warren's words: no "error: " prefix, its did-you-mean on the same line, a value given to a switch called that. */
function usageText(message: string, command: readonly Command[]): string {
  const text = message.replace(/^error: /, "").replace(/\n\(Did you mean (.*)\?\)/, "; did you mean $1?");
  // Commander reads `--check=yes` for a switch as an unknown option named "--check=yes".
  const switchValue = /^unknown option '(--[^=']+)=([^']*)'/.exec(text);
  if (switchValue !== null && command.at(-1)!.options.some((o) => o.long === switchValue[1])) return `option '${switchValue[1]}' takes no value (got '${switchValue[2]}')`;
  return text;
}

/** Runs `warren` with `argv` (without node and script); resolves to the exit status. */
export async function runWarren(argv: readonly string[], io: Io): Promise<number> {
  const state = { status: Exit.ok as number, errors: [] as string[] };
  const root = program(io, state);
  if (argv.length === 0) {
    io.err(root.helpInformation().replace(/\n+$/, ""));
    return Exit.usage;
  }
  try {
    await root.parseAsync([...argv], { from: "user" });
    return state.status;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") return err.exitCode === 0 ? Exit.ok : Exit.usage;
      const command = commandOf(root, argv);
      io.err(`warren: ${oneLine(usageText(state.errors.join("\n") || err.message, command))} (see: ${[...command.map((c) => c.name()), "--help"].join(" ")})`);
      return Exit.usage;
    }
    if (err instanceof CliError) {
      io.err(`warren: ${oneLine(err.message)}`);
      return err.exit;
    }
    io.err(`warren: unexpected failure: ${oneLine(err instanceof Error ? err.message : String(err))}${process.env.WARREN_DEBUG ? `\n${(err as Error).stack}` : " (set WARREN_DEBUG=1 for details)"}`);
    return Exit.failure;
  }
}
