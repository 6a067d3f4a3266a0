/**
 * `aceh-release rollback start|status` in-process against the embedded dev server and a worker running the
 * stand-in `rollbackWorkflow`: the id, task queue and validated input of what is started, --wait, --json,
 * the failures and their exit statuses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RollbackResult } from '../../src/schemas/release';
import { COMMIT, startCliHarness, type CliHarness } from './cli-harness';
import { STAND_IN_PREVIOUS_DIGEST } from './stand-in-constants';

let h: CliHarness;
beforeAll(async () => {
  h = await startCliHarness();
});
afterAll(async () => {
  await h?.close();
});

let clock = Date.now();
/** A clock of its own per run, so that every rollback gets an id no other one has. */
function freshClock(): { now: () => Date; id: string } {
  clock += 1000;
  const at = clock;
  return { now: () => new Date(at), id: `rollback-${at}` };
}

async function inputOf(workflowId: string): Promise<unknown> {
  const history = await h.client.workflow.getHandle(workflowId).fetchHistory();
  const data = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
  return JSON.parse(Buffer.from(data!).toString('utf8'));
}

describe('rollback start', () => {
  it('starts rollbackWorkflow as rollback-<epoch ms> on aceh-release and prints its id', async () => {
    const { now, id } = freshClock();
    const r = await h.run(['rollback', 'start', '--reason', 'error rate 7%', '--requested-by', 'carol'], {
      now,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const description = await h.client.workflow.getHandle(id).describe();
    expect(r.stdout).toBe(
      `started rollback ${id}, run ${description.runId}\nfollow it with: aceh-release rollback status ${id}\n`,
    );
    expect(description.type).toBe('rollbackWorkflow');
    expect(description.taskQueue).toBe('aceh-release');
    expect(await inputOf(id)).toEqual({
      reason: 'error rate 7%',
      requestedBy: 'carol',
      restoreDatabase: true,
      confirmStaleSnapshot: false,
    });
  });

  it('passes --version, --no-restore-database and --confirm-stale-snapshot; --json prints the ids', async () => {
    const { now, id } = freshClock();
    const r = await h.run(
      [
        'rollback',
        'start',
        '--reason',
        'bad migration',
        '--requested-by',
        'carol',
        '--version',
        '1.2.0',
        '--no-restore-database',
        '--confirm-stale-snapshot',
        '--json',
      ],
      { now },
    );
    expect(r.code).toBe(0);
    const { runId } = await h.client.workflow.getHandle(id).describe();
    expect(JSON.parse(r.stdout)).toEqual({ workflowId: id, runId });
    expect(await inputOf(id)).toEqual({
      reason: 'bad migration',
      requestedBy: 'carol',
      version: '1.2.0',
      restoreDatabase: false,
      confirmStaleSnapshot: true,
    });
  });

  it('--wait prints the result: restored digest, database, steps', async () => {
    const { now, id } = freshClock();
    const r = await h.run(
      ['rollback', 'start', '--reason', 'errors', '--requested-by', 'carol', '--version', '1.4.0', '--wait'],
      { now },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(new RegExp(`^started rollback ${id}, run \\S+; waiting for it to end$`));
    expect(lines.slice(1, 4)).toEqual([
      'Rolled back release 1.4.0',
      `  restored digest  ${STAND_IN_PREVIOUS_DIGEST}`,
      '  database         restored from the pre-deployment snapshot',
    ]);
    expect(r.stdout).toMatch(/\n {2}deployPreviousRevision {2}completed {2}/);
    expect(r.stdout).toMatch(/\n {2}restoreSnapshot {9}completed {2}/);
  });

  it('--wait --json prints the ids and the result as the workflow returned it', async () => {
    const { now, id } = freshClock();
    const r = await h.run(
      [
        'rollback',
        'start',
        '--reason',
        'errors',
        '--requested-by',
        'carol',
        '--no-restore-database',
        '--wait',
        '--json',
      ],
      { now },
    );
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout) as { workflowId: string; result: RollbackResult };
    expect(printed.workflowId).toBe(id);
    expect(printed.result).toEqual(await h.client.workflow.getHandle(id).result());
    expect(printed.result).toMatchObject({
      databaseRestored: false,
      restoredDigest: STAND_IN_PREVIOUS_DIGEST,
    });
  });

  it('--wait on a rollback that fails: one line with the reason, exit 1', async () => {
    const { now, id } = freshClock();
    const r = await h.run(
      ['rollback', 'start', '--reason', 'simulate failure', '--requested-by', 'carol', '--wait'],
      {
        now,
      },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`aceh-release: rollback ${id} failed: no previous revision to roll back to\n`);
  });

  it.each([
    [['--reason', ' ', '--requested-by', 'carol'], '✖ a rollback needs a reason\n  → at reason'],
    [['--reason', 'x', '--requested-by', 'carol', '--version', 'v1'], '→ at version'],
    [['--reason', 'x', '--requested-by', 'carol smith'], '→ at requestedBy'],
  ])(
    'refuses invalid input %j with the prettified issues, exit 2, and starts nothing',
    async (args, message) => {
      const { now, id } = freshClock();
      const r = await h.run(['rollback', 'start', ...args], { now });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('aceh-release: invalid rollback input, nothing was started:\n');
      expect(r.stderr).toContain(message);
      await expect(h.client.workflow.getHandle(id).describe()).rejects.toThrow();
    },
  );

  it('requires --reason and --requested-by (usage error, exit 2)', async () => {
    const r = await h.run(['rollback', 'start', '--requested-by', 'carol']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '--reason <text>' not specified");
  });
});

describe('rollback status', () => {
  it('shows a completed rollback with its result; --json as one document', async () => {
    const { now, id } = freshClock();
    await h.run(['rollback', 'start', '--reason', 'errors', '--requested-by', 'carol', '--wait'], { now });
    const r = await h.run(['rollback', 'status', id]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`^Rollback ${id}: COMPLETED, started \\S+ \\S+Z, ended \\S+ \\S+Z\\n`),
    );
    expect(r.stdout).toContain('Rolled back release 1.1.0\n');
    const json = await h.run(['rollback', 'status', id, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      workflowId: id,
      status: 'COMPLETED',
      result: { version: '1.1.0', databaseRestored: true },
      failure: null,
    });
  });

  it('shows a failed rollback with its failure, exit 1', async () => {
    const { now, id } = freshClock();
    await h.run(['rollback', 'start', '--reason', 'simulate failure', '--requested-by', 'carol', '--wait'], {
      now,
    });
    const r = await h.run(['rollback', 'status', id, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      status: 'FAILED',
      result: null,
      failure: 'no previous revision to roll back to',
    });
  });

  it('an unknown id, or the id of a release: one clear line, exit 1', async () => {
    const unknown = await h.run(['rollback', 'status', 'rollback-1']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('aceh-release: rollback rollback-1 does not exist\n');
    const version = `${Date.now() % 1_000_000}.0.1`;
    await h.run(['release', 'start', version, '--commit', COMMIT, '--requested-by', 'alice']);
    const release = await h.run(['rollback', 'status', `release-v${version}`]);
    expect(release.code).toBe(1);
    expect(release.stderr).toBe(`aceh-release: release-v${version} is a releaseWorkflow, not a rollback\n`);
  });
});
