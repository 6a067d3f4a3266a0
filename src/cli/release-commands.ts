/**
 * `aceh-release release …`: start a release, send it approvals, rejections, cancellations and QA results,
 * read its status, list releases. Every command speaks to `releaseWorkflow` through the public names of
 * src/workflows/definitions.ts, so each has an equivalent in the Temporal CLI.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionInfo,
  type WorkflowHandle,
} from '@temporalio/client';
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import type { z } from 'zod';
import { TASK_QUEUE } from '../config/temporal-connection';
import {
  ApproveSignal,
  CancelSignal,
  QaResultSignal,
  RELEASE_PHASES,
  RejectSignal,
  ReleaseInput,
  ReleaseVersion,
  type RefusedSignal,
  type ReleaseStatus,
} from '../schemas/release';
import {
  RELEASE_WORKFLOW_TYPE,
  SEARCH_ATTRIBUTES,
  approveSignal,
  cancelSignal,
  qaResultSignal,
  rejectSignal,
  releaseWorkflowId,
  statusQuery,
} from '../workflows/definitions';
import {
  CliFailure,
  EXIT_FAILED,
  EXIT_OK,
  EXIT_USAGE,
  nowOf,
  printJson,
  sleepOf,
  type CliIo,
  type RunState,
} from './cli-io';
import { clean, formatReleaseList, formatReleaseStatus, type ReleaseListRow } from './format-status';
import {
  TEMPORAL_ENVIRONMENT_HELP,
  action,
  explain,
  invalidInput,
  withQueryDeadline,
  withTemporal,
} from './temporal-access';

/** Typed keys of the two Keyword search attributes every release carries. */
export const releaseVersionKey = defineSearchAttributeKey(
  SEARCH_ATTRIBUTES.version,
  SearchAttributeType.KEYWORD,
);
export const releasePhaseKey = defineSearchAttributeKey(SEARCH_ATTRIBUTES.phase, SearchAttributeType.KEYWORD);

/** Pause between the queries of `release status --watch`. */
export const WATCH_INTERVAL_MS = 2_000;

/** `release 1.2.0 (workflow release-v1.2.0)`: how messages name a release. */
const nameOf = (version: string) => `release ${version} (workflow ${releaseWorkflowId(version)})`;

/** The version argument, validated like the workflow validates it (exit 2 otherwise). */
function parseVersion(version: string): string {
  const parsed = ReleaseVersion.safeParse(version);
  if (!parsed.success) throw invalidInput(`invalid version ${JSON.stringify(version)}`, parsed.error);
  return parsed.data;
}

/** The payload as the schema accepts it, or a usage failure (exit 2) naming what was refused. */
function validPayload<S extends z.ZodType>(schema: S, payload: unknown, heading: string): z.output<S> {
  const parsed = schema.safeParse(payload);
  if (!parsed.success) throw invalidInput(heading, parsed.error);
  return parsed.data;
}

/** Drops the keys whose value is undefined, so that the payload in history shows only what was given. */
const defined = <T extends object>(value: T): T =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

async function queryStatus(client: Client, handle: WorkflowHandle, version: string): Promise<ReleaseStatus> {
  try {
    return await withQueryDeadline(client, () => handle.query(statusQuery));
  } catch (err) {
    throw explain(err, nameOf(version));
  }
}

interface SignalSpec {
  /** The signal's public name, for messages. */
  name: string;
  definition: typeof approveSignal;
  payload: unknown;
  /** Who sends it, to find the workflow's refusal among others. */
  actor: string;
  /** What the confirmation says was recorded. */
  accepted: string;
}

/**
 * Sends one signal to a running release and, unless `wait` is false, reads the status once more to tell
 * whether the release accepted it (a new entry in `status.refused` from the same sender means it did not).
 */
async function sendSignal(io: CliIo, version: string, signal: SignalSpec, wait: boolean): Promise<number> {
  return await withTemporal(io, async (client) => {
    const workflowId = releaseWorkflowId(version);
    const handle = client.workflow.getHandle(workflowId);
    let before: ReleaseStatus | undefined;
    if (wait) {
      before = await queryStatus(client, handle, version);
      if (before.terminal) throw endedFailure(version, before.phase);
    } else {
      const description = await handle.describe().catch((err: unknown) => {
        throw explain(err, nameOf(version));
      });
      if (description.status.name !== 'RUNNING') throw endedFailure(version, description.status.name);
    }
    try {
      await handle.signal(signal.definition, signal.payload);
    } catch (err) {
      // It was there a moment ago: it ended in between.
      if (err instanceof WorkflowNotFoundError) throw endedFailure(version, 'just now');
      throw err;
    }
    if (!before) {
      io.stdout(`sent ${signal.name} to ${nameOf(version)}; not waiting to see whether it was accepted\n`);
      return EXIT_OK;
    }
    // A query is answered only after the workflow has handled the events before it, this signal included.
    const after = await queryStatus(client, handle, version);
    const refusal = newRefusal(before.refused.length, after.refused, signal);
    if (refusal) {
      io.stderr(
        `aceh-release: ${signal.name} from ${signal.actor} refused by ${nameOf(version)}: ${clean(refusal.reason)}\n`,
      );
      return EXIT_FAILED;
    }
    io.stdout(`${signal.accepted}; ${nameOf(version)} is in phase ${after.phase}\n`);
    return EXIT_OK;
  });
}

const endedFailure = (version: string, phase: string) =>
  new CliFailure(EXIT_FAILED, `${nameOf(version)} has ended (${phase}): it takes no more signals`);

/** The refusal the release recorded for this signal since `seen` entries, if any: the newest one. */
function newRefusal(
  seen: number,
  refused: readonly RefusedSignal[],
  signal: SignalSpec,
): RefusedSignal | undefined {
  return refused
    .slice(seen)
    .filter((r) => r.signal === signal.name && (r.from === null || r.from === signal.actor))
    .at(-1);
}

function describeRow(info: WorkflowExecutionInfo): ReleaseListRow {
  return {
    version: info.typedSearchAttributes.get(releaseVersionKey) ?? null,
    phase: info.typedSearchAttributes.get(releasePhaseKey) ?? null,
    status: info.status.name,
    workflowId: info.workflowId,
    startTime: info.startTime.toISOString(),
    closeTime: info.closeTime?.toISOString() ?? null,
  };
}

const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) {
    throw new InvalidArgumentError('must be a whole number from 1 to 1000.');
  }
  return n;
};

interface StartOptions {
  commit: string;
  requestedBy: string;
  strategy?: string;
  hotfix?: boolean;
  added?: string[];
  fixed?: string[];
  changed?: string[];
  json?: boolean;
}

/** Registers `release start|approve|reject|cancel|qa|status|list` on `program`. */
export function registerReleaseCommands(program: Command, io: CliIo, state: RunState): void {
  const release = program
    .command('release')
    .description('start a release, approve, reject or cancel it, report QA, follow its status')
    .addHelpText('after', TEMPORAL_ENVIRONMENT_HELP);

  release
    .command('start')
    .description(`start ${RELEASE_WORKFLOW_TYPE} for <version> (workflow id release-v<version>)`)
    .argument('<version>', 'version to release, e.g. 1.2.0 (no leading v)')
    .requiredOption('--commit <sha>', 'the full 40-character commit SHA on main to release')
    .requiredOption('--requested-by <login>', 'who asks for the release (may not approve it)')
    .addOption(
      new Option(
        '--strategy <strategy>',
        'deployment strategy (default: the one configured for production)',
      ).choices(['blue-green', 'canary', 'shadow', 'rolling']),
    )
    .option(
      '--hotfix',
      'the shorter hotfix route: no staging QA gate, the hotfix approval count; still audited',
    )
    .option('--added <text>', 'a CHANGELOG "Added" line (repeat the option for more)', collect)
    .option('--fixed <text>', 'a CHANGELOG "Fixed" line (repeat the option for more)', collect)
    .option('--changed <text>', 'a CHANGELOG "Changed" line (repeat the option for more)', collect)
    .option('--json', 'print {workflowId, runId, version, taskQueue} as JSON')
    .addHelpText(
      'after',
      `
The input is checked first, as the workflow checks it; nothing is started when it is invalid. The workflow
runs on task queue ${TASK_QUEUE} with the search attributes ${SEARCH_ATTRIBUTES.version}=<version> and
${SEARCH_ATTRIBUTES.phase}=validating. Prints the workflow id and run id.

Exit status: 0 started, 1 a release of this version is already running or Temporal failed, 2 invalid input.`,
    )
    .action(
      action(io, state, async (rawVersion: string, options: StartOptions) => {
        const { added = [], fixed = [], changed = [] } = options;
        const changes =
          added.length + fixed.length + changed.length > 0 ? { added, fixed, changed } : undefined;
        const input = validPayload(
          ReleaseInput,
          defined({
            version: rawVersion,
            commit: options.commit,
            requestedBy: options.requestedBy,
            strategy: options.strategy,
            hotfix: options.hotfix ?? false,
            changes,
          }),
          'invalid release input, nothing was started',
        );
        const workflowId = releaseWorkflowId(input.version);
        return await withTemporal(io, async (client) => {
          let handle;
          try {
            handle = await client.workflow.start(RELEASE_WORKFLOW_TYPE, {
              taskQueue: TASK_QUEUE,
              workflowId,
              args: [input],
              typedSearchAttributes: [
                { key: releaseVersionKey, value: input.version },
                { key: releasePhaseKey, value: 'validating' },
              ],
            });
          } catch (err) {
            if (err instanceof WorkflowExecutionAlreadyStartedError) {
              throw new CliFailure(
                EXIT_FAILED,
                `${nameOf(input.version)} is already running; see \`aceh-release release status ${input.version}\``,
              );
            }
            throw err;
          }
          if (options.json) {
            printJson(io, {
              workflowId,
              runId: handle.firstExecutionRunId,
              version: input.version,
              taskQueue: TASK_QUEUE,
            });
          } else {
            io.stdout(
              `started ${nameOf(input.version)}, run ${handle.firstExecutionRunId}\n` +
                `follow it with: aceh-release release status ${input.version} --watch\n`,
            );
          }
          return EXIT_OK;
        });
      }),
    );

  const waitOption = new Option(
    '--no-wait',
    'send the signal without reading the status to see whether it was accepted',
  );
  const signalExit = `
Exit status: 0 the release accepted the signal (or it was sent, with --no-wait), 1 the release refused it,
has ended, does not exist, or Temporal failed, 2 invalid arguments (checked before anything is sent).`;

  release
    .command('approve')
    .description('approve a release waiting for approval (signal approve)')
    .argument('<version>', 'the release, e.g. 1.2.0')
    .requiredOption('--approver <login>', 'who approves (not the person who requested the release)')
    .option('--comment <text>', 'a note kept with the approval in the audit trail')
    .option(
      '--digest <sha256>',
      'the image digest you reviewed (sha256:<64 hex>): refused if the release is bound to another',
    )
    .option(
      '--freeze-override',
      'also count as one of the two approvals that let the release through a freeze window',
    )
    .addOption(waitOption)
    .addHelpText('after', signalExit)
    .action(
      action(
        io,
        state,
        async (
          rawVersion: string,
          o: { approver: string; comment?: string; digest?: string; freezeOverride?: boolean; wait: boolean },
        ) => {
          const version = parseVersion(rawVersion);
          const payload = validPayload(
            ApproveSignal,
            defined({
              approver: o.approver,
              comment: o.comment,
              digest: o.digest,
              freezeOverride: o.freezeOverride,
            }),
            'invalid approval, nothing was sent',
          );
          return await sendSignal(
            io,
            version,
            {
              name: 'approve',
              definition: approveSignal,
              payload,
              actor: payload.approver,
              accepted: `approval by ${payload.approver} accepted`,
            },
            o.wait,
          );
        },
      ),
    );

  release
    .command('reject')
    .description('reject a release waiting for approval; it ends in phase rejected (signal reject)')
    .argument('<version>', 'the release, e.g. 1.2.0')
    .requiredOption('--approver <login>', 'who rejects')
    .requiredOption('--reason <text>', 'why, for the audit trail')
    .addOption(waitOption)
    .addHelpText('after', signalExit)
    .action(
      action(
        io,
        state,
        async (rawVersion: string, o: { approver: string; reason: string; wait: boolean }) => {
          const version = parseVersion(rawVersion);
          const payload = validPayload(
            RejectSignal,
            { approver: o.approver, reason: o.reason },
            'invalid rejection, nothing was sent',
          );
          return await sendSignal(
            io,
            version,
            {
              name: 'reject',
              definition: rejectSignal,
              payload,
              actor: payload.approver,
              accepted: `rejection by ${payload.approver} accepted`,
            },
            o.wait,
          );
        },
      ),
    );

  release
    .command('cancel')
    .description(
      'cancel a release: completed steps are compensated, it ends in phase cancelled (signal cancel)',
    )
    .argument('<version>', 'the release, e.g. 1.2.0')
    .requiredOption('--requested-by <login>', 'who cancels')
    .requiredOption('--reason <text>', 'why, for the audit trail')
    .addOption(waitOption)
    .addHelpText('after', signalExit)
    .action(
      action(
        io,
        state,
        async (rawVersion: string, o: { requestedBy: string; reason: string; wait: boolean }) => {
          const version = parseVersion(rawVersion);
          const payload = validPayload(
            CancelSignal,
            { requestedBy: o.requestedBy, reason: o.reason },
            'invalid cancellation, nothing was sent',
          );
          return await sendSignal(
            io,
            version,
            {
              name: 'cancel',
              definition: cancelSignal,
              payload,
              actor: payload.requestedBy,
              accepted: `cancellation by ${payload.requestedBy} accepted`,
            },
            o.wait,
          );
        },
      ),
    );

  release
    .command('qa')
    .description('report the QA verification result of a release (signal qaResult)')
    .argument('<version>', 'the release, e.g. 1.2.0')
    .addOption(new Option('--passed', 'QA passed').conflicts('failed'))
    .addOption(new Option('--failed', 'QA failed').conflicts('passed'))
    .requiredOption('--reporter <login>', 'who (or which bot) reports')
    .option('--report-url <url>', 'http(s) link to the test report')
    .option('--summary <text>', 'a short summary kept with the result')
    .addOption(waitOption)
    .addHelpText('after', `\nGive exactly one of --passed and --failed.\n${signalExit}`)
    .action(
      action(
        io,
        state,
        async (
          rawVersion: string,
          o: {
            passed?: boolean;
            failed?: boolean;
            reporter: string;
            reportUrl?: string;
            summary?: string;
            wait: boolean;
          },
        ) => {
          if (!o.passed && !o.failed)
            throw new CliFailure(EXIT_USAGE, 'release qa: give --passed or --failed');
          const version = parseVersion(rawVersion);
          const payload = validPayload(
            QaResultSignal,
            defined({ passed: !!o.passed, reporter: o.reporter, reportUrl: o.reportUrl, summary: o.summary }),
            'invalid QA result, nothing was sent',
          );
          return await sendSignal(
            io,
            version,
            {
              name: 'qaResult',
              definition: qaResultSignal,
              payload,
              actor: payload.reporter,
              accepted: `QA result (${payload.passed ? 'passed' : 'failed'}) from ${payload.reporter} accepted`,
            },
            o.wait,
          );
        },
      ),
    );

  release
    .command('status')
    .description('show where a release stands (query status)')
    .argument('<version>', 'the release, e.g. 1.2.0')
    .option('--json', 'print the answer of the status query as JSON, unchanged')
    .option(
      '--watch',
      `query again every ${WATCH_INTERVAL_MS / 1000}s, printing each change, until the release ends`,
    )
    .addHelpText(
      'after',
      `
Shows the phase, the image digest, the queue position, approvals (who, when), refused signals, the steps
(started, ended, duration), the bake samples (error rate against the threshold, requests, decision), the
compensations and the outcome. Times are UTC.

Exit status: 0 answered (with --watch: the release ended released), 1 the release does not exist, no
worker answered, or (with --watch) it ended otherwise than released, 2 invalid version.`,
    )
    .action(
      action(io, state, async (rawVersion: string, o: { json?: boolean; watch?: boolean }) => {
        const version = parseVersion(rawVersion);
        const print = (status: ReleaseStatus) =>
          o.json ? printJson(io, status) : io.stdout(formatReleaseStatus(status, nowOf(io)));
        return await withTemporal(io, async (client) => {
          const handle = client.workflow.getHandle(releaseWorkflowId(version));
          let status = await queryStatus(client, handle, version);
          print(status);
          if (!o.watch) return EXIT_OK;
          let shown = JSON.stringify(status);
          while (!status.terminal) {
            await sleepOf(io)(WATCH_INTERVAL_MS);
            status = await queryStatus(client, handle, version);
            const now = JSON.stringify(status);
            if (now !== shown) {
              if (!o.json) io.stdout('\n');
              print(status);
              shown = now;
            }
          }
          return status.phase === 'released' ? EXIT_OK : EXIT_FAILED;
        });
      }),
    );

  release
    .command('list')
    .description(`list ${RELEASE_WORKFLOW_TYPE} executions, newest first`)
    .addOption(
      new Option('--phase <phase>', `only releases whose ${SEARCH_ATTRIBUTES.phase} is <phase>`).choices(
        RELEASE_PHASES,
      ),
    )
    .option('--limit <n>', 'at most n releases (1-1000)', positiveInt, 20)
    .option('--json', 'print [{version, phase, status, workflowId, startTime, closeTime}] as JSON')
    .addHelpText(
      'after',
      `
Reads Temporal visibility: WorkflowType = "${RELEASE_WORKFLOW_TYPE}" [AND ${SEARCH_ATTRIBUTES.phase} = "<phase>"].
The phase is the one the release last recorded in its search attribute; status is Temporal's (RUNNING,
COMPLETED, FAILED, ...). Visibility can lag a moment behind a release that just started or changed phase.

Exit status: 0 listed (also when none matched), 1 Temporal failed, 2 invalid options.`,
    )
    .action(
      action(io, state, async (o: { phase?: string; limit: number; json?: boolean }) => {
        const query =
          `WorkflowType = "${RELEASE_WORKFLOW_TYPE}"` +
          (o.phase ? ` AND ${SEARCH_ATTRIBUTES.phase} = "${o.phase}"` : '');
        return await withTemporal(io, async (client) => {
          const rows: ReleaseListRow[] = [];
          for await (const info of client.workflow.list({ query, pageSize: o.limit })) {
            rows.push(describeRow(info));
            if (rows.length >= o.limit) break;
          }
          // Newest first, whatever order the server's visibility store returns.
          rows.sort((a, b) => b.startTime.localeCompare(a.startTime));
          if (o.json) printJson(io, rows);
          else if (rows.length === 0)
            io.stdout(o.phase ? `no releases in phase ${o.phase}\n` : 'no releases\n');
          else io.stdout(formatReleaseList(rows));
          return EXIT_OK;
        });
      }),
    );
}
