/**
 * Command line of the embedded dev server. It accepts both command lines that `@temporalio/testing`
 * passes to an `existing-path` executable:
 *
 *   test-server form:  temporal-devserver <port> [--enable-time-skipping]        (time skipping on)
 *   Temporal CLI form: temporal-devserver server start-dev --port P --namespace N --ip IP
 *                        [--db-filename F] [--search-attribute K=T]... [--headless] [--log-level L] ...
 *                                                                                 (real time)
 */
import { DevServer, parseSearchAttributeType, type DevServerOptions } from './server';

export const USAGE = `Usage:
  temporal-devserver <port> [--enable-time-skipping]
      Test-server mode, as TestWorkflowEnvironment.createTimeSkipping() runs it: time skipping, locked
      until a test unlocks it.
  temporal-devserver server start-dev [--port 7233] [--ip 127.0.0.1] [--namespace N]...
      [--search-attribute Name=Type]... [--db-filename F] [--headless] [--ui-port U]
      [--log-level L] [--log-format F] [--dynamic-config-value K=V]...
      Dev-server mode, as the Temporal CLI and TestWorkflowEnvironment.createLocal() run it: real time.
  temporal-devserver --help

State lives in memory and is gone when the process ends. Search attribute types: Text, Keyword, Int,
Double, Bool, Datetime, KeywordList.

Activities a worker asks to run at once come back in its workflow-task completion (eager dispatch), as
with the Temporal CLI's dev server; --dynamic-config-value system.enableActivityEagerExecution=false
turns that off. Other dynamic config values are accepted and change nothing.`;

/** The one dynamic config key this server reads. */
const EAGER_ACTIVITY_KEY = 'system.enableActivityEagerExecution';

export class UsageError extends Error {}

export interface ParsedCommandLine {
  options: DevServerOptions;
  notices: string[];
}

/** Flags of `temporal server start-dev` that take a value and change nothing here. */
const IGNORED_VALUE_FLAGS = new Set([
  '--log-level',
  '--log-format',
  '--ui-port',
  '--ui-ip',
  '--ui-public-path',
  '--metrics-port',
  '--http-port',
  '--sqlite-pragma',
  '--config',
  '--env',
  '--tls-cert-path',
  '--tls-key-path',
  '--tls-ca-path',
  '--log-config',
]);
const IGNORED_BOOLEAN_FLAGS = new Set(['--headless', '--ui-asset-path', '--time-format']);

function parsePort(value: string | undefined, what: string): number {
  const port = Number(value);
  if (!value || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`${what} must be a port number between 0 and 65535, got ${JSON.stringify(value)}`);
  }
  return port;
}

export function parseCommandLine(argv: string[]): ParsedCommandLine {
  const notices: string[] = [];
  if (argv.length > 0 && /^\d+$/.test(argv[0]!)) {
    const options: DevServerOptions = {
      port: parsePort(argv[0], 'the port'),
      timeSkipping: true,
      host: '127.0.0.1',
    };
    for (const arg of argv.slice(1)) {
      if (arg === '--enable-time-skipping') options.startUnlocked = true;
      else throw new UsageError(`unknown test-server argument ${JSON.stringify(arg)}`);
    }
    return { options, notices };
  }
  let args = argv;
  if (args[0] === 'server' && args[1] === 'start-dev') args = args.slice(2);
  else if (args.length > 0 && !args[0]!.startsWith('-')) {
    throw new UsageError(`unknown command ${JSON.stringify(args.join(' '))}`);
  }
  const options: DevServerOptions = {
    port: 7233,
    host: '127.0.0.1',
    timeSkipping: false,
    namespaces: [],
    searchAttributes: {},
  };
  for (let i = 0; i < args.length; i++) {
    const raw = args[i]!;
    const eq = raw.indexOf('=');
    const flag = raw.startsWith('--') && eq > 0 ? raw.slice(0, eq) : raw;
    const inline = raw.startsWith('--') && eq > 0 ? raw.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = args[++i];
      if (next === undefined) throw new UsageError(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case '--port':
      case '-p':
        options.port = parsePort(value(), '--port');
        break;
      case '--ip':
        options.host = value();
        break;
      case '--namespace':
      case '-n':
        options.namespaces!.push(value());
        break;
      case '--search-attribute': {
        const spec = value();
        const at = spec.indexOf('=');
        if (at <= 0) throw new UsageError(`--search-attribute takes Name=Type, got ${JSON.stringify(spec)}`);
        try {
          parseSearchAttributeType(spec.slice(at + 1));
        } catch (err) {
          throw new UsageError(`--search-attribute ${spec}: ${(err as Error).message}`);
        }
        options.searchAttributes![spec.slice(0, at)] = spec.slice(at + 1);
        break;
      }
      case '--db-filename':
      case '-f':
        notices.push(
          `--db-filename ${value()}: this server keeps state in memory only; nothing is written to disk`,
        );
        break;
      case '--time-skipping':
        options.timeSkipping = true;
        break;
      case '--dynamic-config-value': {
        const spec = value();
        const at = spec.indexOf('=');
        if (at <= 0)
          throw new UsageError(`--dynamic-config-value takes Key=Value, got ${JSON.stringify(spec)}`);
        if (spec.slice(0, at) !== EAGER_ACTIVITY_KEY) break;
        const setting = spec.slice(at + 1).trim();
        if (setting !== 'true' && setting !== 'false')
          throw new UsageError(`${EAGER_ACTIVITY_KEY} takes true or false, got ${JSON.stringify(setting)}`);
        options.eagerActivityExecution = setting === 'true';
        break;
      }
      default:
        if (IGNORED_VALUE_FLAGS.has(flag)) {
          value();
        } else if (!IGNORED_BOOLEAN_FLAGS.has(flag)) {
          throw new UsageError(`unknown option ${JSON.stringify(raw)}`);
        }
    }
  }
  return { options, notices };
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let parsed: ParsedCommandLine;
  try {
    parsed = parseCommandLine(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`temporal-devserver: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  for (const notice of parsed.notices) process.stderr.write(`temporal-devserver: ${notice}\n`);
  const server = await DevServer.start(parsed.options);
  process.stderr.write(
    `temporal-devserver: listening on ${server.address} (${server.timeSkipping ? 'time skipping' : 'real time'})\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    // A parent that dies without killing us (a test runner killed with SIGKILL) must not leave the server
    // behind: when we are re-parented, stop.
    const parent = process.ppid;
    const watch = setInterval(() => {
      if (process.ppid !== parent) stop();
    }, 500);
    watch.unref();
  });
  await server.stop();
  return 0;
}
