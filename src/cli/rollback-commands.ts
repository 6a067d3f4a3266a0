/**
 * `aceh-release rollback …`: start `rollbackWorkflow` (R1-R4: previous revision, database snapshot, CDN
 * purge, notification) and read how a rollback went.
 */
import type { Command } from 'commander';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { TASK_QUEUE } from '../config/temporal-connection';
import { RollbackInput, type RollbackResult } from '../schemas/release';
import { ROLLBACK_WORKFLOW_TYPE, rollbackWorkflowId } from '../workflows/definitions';
import { CliFailure, EXIT_FAILED, EXIT_OK, nowOf, printJson, type CliIo, type RunState } from './cli-io';
import { clean, formatRollbackResult, formatTime } from './format-status';
import {
  TEMPORAL_ENVIRONMENT_HELP,
  action,
  explain,
  invalidInput,
  messageOf,
  withTemporal,
} from './temporal-access';

interface StartOptions {
  reason: string;
  requestedBy: string;
  version?: string;
  restoreDatabase: boolean;
  confirmStaleSnapshot?: boolean;
  wait?: boolean;
  json?: boolean;
}

/** The result of a rollback, or a failure (exit 1) saying why it failed. */
async function resultOf(client: Client, workflowId: string): Promise<RollbackResult> {
  try {
    return await client.workflow.getHandle<() => Promise<RollbackResult>>(workflowId).result();
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      throw new CliFailure(EXIT_FAILED, `rollback ${workflowId} failed: ${messageOf(err.cause ?? err)}`);
    }
    throw explain(err, `rollback ${workflowId}`);
  }
}

/** Why a closed rollback did not complete: the message of its failure, termination or timeout. */
async function failureOf(client: Client, workflowId: string): Promise<string> {
  try {
    await client.workflow.getHandle(workflowId).result();
  } catch (err) {
    if (err instanceof WorkflowFailedError) return messageOf(err.cause ?? err);
    throw explain(err, `rollback ${workflowId}`);
  }
  return 'ended without a failure';
}

/** Registers `rollback start|status` on `program`. */
export function registerRollbackCommands(program: Command, io: CliIo, state: RunState): void {
  const rollback = program
    .command('rollback')
    .description('roll production back to the previous release and follow the rollback')
    .addHelpText('after', TEMPORAL_ENVIRONMENT_HELP);

  rollback
    .command('start')
    .description(`start ${ROLLBACK_WORKFLOW_TYPE} (workflow id rollback-<epoch ms>)`)
    .requiredOption('--reason <text>', 'why, for the audit trail and the notification')
    .requiredOption('--requested-by <login>', 'who asks for the rollback')
    .option(
      '--version <version>',
      'the release to undo (default: the latest released one; refused when it was rolled back already)',
    )
    .option(
      '--no-restore-database',
      'keep the database as it is (default: restore the pre-deployment snapshot)',
    )
    .option(
      '--confirm-stale-snapshot',
      'restore the snapshot even when it is older than the RPO (refused otherwise)',
    )
    .option('--wait', 'wait for the rollback to end and print its result')
    .option('--json', 'print {workflowId, runId} (with --wait also result) as JSON')
    .addHelpText(
      'after',
      `
The input is checked first, as the workflow checks it; nothing is started when it is invalid. The workflow
runs on task queue ${TASK_QUEUE}.

Exit status: 0 started (with --wait: completed), 1 Temporal failed (with --wait: the rollback failed),
2 invalid input.`,
    )
    .action(
      action(io, state, async (o: StartOptions) => {
        const parsed = RollbackInput.safeParse(
          Object.fromEntries(
            Object.entries({
              reason: o.reason,
              requestedBy: o.requestedBy,
              version: o.version,
              restoreDatabase: o.restoreDatabase,
              confirmStaleSnapshot: o.confirmStaleSnapshot ?? false,
            }).filter(([, v]) => v !== undefined),
          ),
        );
        if (!parsed.success) throw invalidInput('invalid rollback input, nothing was started', parsed.error);
        const input = parsed.data;
        return await withTemporal(io, async (client) => {
          const workflowId = rollbackWorkflowId(nowOf(io).getTime());
          const handle = await client.workflow.start(ROLLBACK_WORKFLOW_TYPE, {
            taskQueue: TASK_QUEUE,
            workflowId,
            args: [input],
          });
          const runId = handle.firstExecutionRunId;
          if (!o.wait) {
            if (o.json) printJson(io, { workflowId, runId });
            else
              io.stdout(
                `started rollback ${workflowId}, run ${runId}\n` +
                  `follow it with: aceh-release rollback status ${workflowId}\n`,
              );
            return EXIT_OK;
          }
          if (!o.json) io.stdout(`started rollback ${workflowId}, run ${runId}; waiting for it to end\n`);
          const result = await resultOf(client, workflowId);
          if (o.json) printJson(io, { workflowId, runId, result });
          else io.stdout(formatRollbackResult(result, nowOf(io)));
          return EXIT_OK;
        });
      }),
    );

  rollback
    .command('status')
    .description('show whether a rollback is running, and its result once it has ended')
    .argument('<workflowId>', 'the id rollback start printed, e.g. rollback-1760436000000')
    .option('--json', 'print {workflowId, runId, status, startTime, closeTime, result, failure} as JSON')
    .addHelpText(
      'after',
      `
Exit status: 0 running or completed, 1 failed, terminated, not found, or not a rollback.`,
    )
    .action(
      action(io, state, async (workflowId: string, o: { json?: boolean }) => {
        return await withTemporal(io, async (client) => {
          const handle = client.workflow.getHandle(workflowId);
          const description = await handle.describe().catch((err: unknown) => {
            throw explain(err, `rollback ${workflowId}`);
          });
          if (description.type !== ROLLBACK_WORKFLOW_TYPE) {
            throw new CliFailure(EXIT_FAILED, `${workflowId} is a ${description.type}, not a rollback`);
          }
          const status = description.status.name;
          let result: RollbackResult | null = null;
          let failure: string | null = null;
          if (status === 'COMPLETED') result = await resultOf(client, workflowId);
          else if (status !== 'RUNNING') failure = await failureOf(client, workflowId);
          const summary = {
            workflowId,
            runId: description.runId,
            status,
            startTime: description.startTime.toISOString(),
            closeTime: description.closeTime?.toISOString() ?? null,
            result,
            failure,
          };
          if (o.json) {
            printJson(io, summary);
          } else {
            io.stdout(
              `Rollback ${workflowId}: ${status}, started ${formatTime(summary.startTime)}` +
                `${summary.closeTime ? `, ended ${formatTime(summary.closeTime)}` : ''}\n`,
            );
            if (result) io.stdout(formatRollbackResult(result, nowOf(io)));
            if (failure) io.stdout(`  failure  ${clean(failure)}\n`);
          }
          return failure === null ? EXIT_OK : EXIT_FAILED;
        });
      }),
    );
}
