/**
 * `aceh-release`, the command line of this project (launched by `bin/aceh-release`).
 *
 *   aceh-release config validate [file] [--json] [--no-env-overrides]
 *   aceh-release release start|approve|reject|cancel|qa|status|list …   (src/cli/release-commands.ts)
 *   aceh-release rollback start|status …                                 (src/cli/rollback-commands.ts)
 *
 * Each command group is registered by one function over the shared `CliIo`. Exit codes: 0 success, 1 the
 * command ran and found a problem (an invalid configuration, a refused signal, an unreachable server), 2 a
 * usage error (unknown command or option, invalid argument, unreadable file).
 */
import { Command, CommanderError } from 'commander';
import { OVERRIDE_PREFIX } from './config/config-overrides';
import {
  CONFIG_FILE_VARIABLE,
  ConfigFileError,
  DEFAULT_CONFIG_FILE,
  configFilePath,
  loadPlatformConfig,
  type LoadResult,
} from './config/load-platform-config';
import { formatIssue, formatPath, type ConfigIssue } from './config/validate-platform-config';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, type CliIo, type RunState } from './cli/cli-io';
import { registerReleaseCommands } from './cli/release-commands';
import { registerRollbackCommands } from './cli/rollback-commands';
import { DEFAULT_TEMPORAL_ADDRESS } from './cli/temporal-access';

export { EXIT_FAILED, EXIT_OK, EXIT_USAGE, type CliIo, type RunState } from './cli/cli-io';

const processIo = (): CliIo => ({
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function registerConfigCommands(program: Command, io: CliIo, state: RunState): void {
  const config = program.command('config').description('work with the platform configuration');

  config
    .command('validate')
    .description('check a platform configuration file: schema, inline secrets, rules between settings')
    .argument('[file]', `YAML or JSON file (default: $${CONFIG_FILE_VARIABLE}, else ${DEFAULT_CONFIG_FILE})`)
    .option('--json', 'print the result as one JSON document on stdout')
    .option('--no-env-overrides', `ignore ${OVERRIDE_PREFIX}… variables and check the file as written`)
    .addHelpText(
      'after',
      `
Prints "ok: <file> (<n> warnings)" and the warnings, or every error with the path of its setting, e.g.
  error: environments.production.domain: must be an https URL (H1: production is served over HTTPS only)

Environment overrides are applied before validation: ${OVERRIDE_PREFIX}<key>__<key>=<value>, e.g.
  ${OVERRIDE_PREFIX}monitoring__maxErrorRate=0.03

Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error or unreadable file.`,
    )
    .action((file: string | undefined, options: { json?: boolean; envOverrides: boolean }) => {
      const path = configFilePath(file, io.env);
      const json = (value: unknown) => io.stdout(`${JSON.stringify(value, null, 2)}\n`);
      let result: LoadResult;
      try {
        result = loadPlatformConfig({ file: path, env: options.envOverrides ? io.env : {} });
      } catch (err) {
        if (!(err instanceof ConfigFileError)) throw err;
        if (options.json) {
          json({
            ok: false,
            file: path,
            errors: [{ path: '', message: err.message }],
            warnings: [],
            overrides: [],
          });
        } else {
          io.stderr(`aceh-release: ${err.message}\n`);
        }
        state.exitCode = EXIT_USAGE;
        return;
      }
      state.exitCode = result.ok ? EXIT_OK : EXIT_FAILED;
      if (options.json) {
        json({
          ok: result.ok,
          file: result.file,
          errors: result.errors,
          warnings: result.warnings,
          overrides: result.overrides.map((o) => ({ variable: o.variable, path: formatPath(o.path) })),
        });
        return;
      }
      const lines = (prefix: string, issues: ConfigIssue[]) =>
        issues.map((i) => `${prefix}: ${formatIssue(i)}\n`).join('');
      if (result.ok) {
        io.stdout(
          `ok: ${result.file} (${plural(result.warnings.length, 'warning')})\n${lines('warning', result.warnings)}`,
        );
      } else {
        io.stderr(
          `invalid: ${result.file} (${plural(result.errors.length, 'error')}, ${plural(result.warnings.length, 'warning')})\n` +
            lines('error', result.errors) +
            lines('warning', result.warnings),
        );
      }
    });
}

/** Builds the program; `state.exitCode` receives the outcome of the action that runs. */
export function createProgram(io: CliIo, state: RunState = { exitCode: EXIT_OK }): Command {
  const program = new Command('aceh-release')
    .description('Durable release and backup pipelines for the Aceh Commerce platform, on Temporal')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      `
Environment:
  ${CONFIG_FILE_VARIABLE}   configuration file (default ${DEFAULT_CONFIG_FILE})
  ${OVERRIDE_PREFIX}<key>__<key>=<value>   override one setting of the file, e.g.
                         ${OVERRIDE_PREFIX}monitoring__maxErrorRate=0.03
  TEMPORAL_ADDRESS      Temporal frontend of the release and rollback commands (default
                         ${DEFAULT_TEMPORAL_ADDRESS}, where \`npm start\` serves); TEMPORAL_NAMESPACE,
                         TEMPORAL_API_KEY and TEMPORAL_TLS* as for the Temporal CLI

Exit status: 0 success, 1 the command found a problem, 2 usage error.`,
    );
  registerConfigCommands(program, io, state);
  registerReleaseCommands(program, io, state);
  registerRollbackCommands(program, io, state);
  return program;
}

/** Runs the command line `argv` (without `node` and the script) and returns the exit status. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const state: RunState = { exitCode: EXIT_OK };
  const program = createProgram(io, state);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    // Help ends with a CommanderError too: exit code 0 when asked for, 1 when shown for a missing command.
    return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  return state.exitCode;
}
