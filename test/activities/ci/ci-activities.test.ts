import type { Info } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CiActivities, CiActivitiesOptions } from '../../../src/activities/ci/ci-activities';
import { createCiActivities, titleNamesVersion } from '../../../src/activities/ci/ci-activities';
import type { FakeWorkflow } from '../../../src/sandbox/fakes/github-actions-fake';
import { GitHubActionsFake } from '../../../src/sandbox/fakes/github-actions-fake';
import { serialisedFailure } from '../../../src/sandbox/fakes/scripted-http-server';

const TOKEN = 'ghp_test_token_0123456789abcdef';
const OWNER = 'luxima';
const REPO = 'aceh-commerce';
const COMMIT = 'a'.repeat(39) + '1';
const OTHER_COMMIT = 'b'.repeat(39) + '2';

let fake: GitHubActionsFake;
let workflow: FakeWorkflow;
const failures: unknown[] = [];
let seq = 0;

beforeAll(async () => {
  fake = await GitHubActionsFake.start({ token: TOKEN, owner: OWNER, repo: REPO });
});
afterAll(async () => {
  for (const f of failures) expect(serialisedFailure(f)).not.toContain(TOKEN);
  await fake.close();
});
beforeEach(() => {
  fake.reset();
  workflow = fake.addWorkflow({ file: 'build.yml' });
  fake.refs.set('main', COMMIT);
  fake.refs.set('v1.2.0', COMMIT);
});
afterEach(() => {
  expect(fake.violations).toEqual([]);
});

function ci(extra: Partial<CiActivitiesOptions> = {}): CiActivities {
  return createCiActivities({
    apiBaseUrl: fake.baseUrl,
    owner: OWNER,
    repo: REPO,
    workflowFile: 'build.yml',
    token: TOKEN,
    pollIntervalMs: 5,
    findRunTimeoutMs: 2_000,
    ...extra,
  });
}

function activityEnv(info: Partial<Info> = {}): MockActivityEnvironment {
  seq += 1;
  return new MockActivityEnvironment({
    workflowExecution: { workflowId: `ci-test-${seq}-${Date.now()}`, runId: `run-${seq}` },
    activityId: `${seq}`,
    ...info,
  });
}

function run<I, O>(fn: (input: I) => Promise<O>, input: I, env = activityEnv()): Promise<O> {
  return env.run<[I], O, typeof fn>(fn, input);
}

function heartbeatsOf(env: MockActivityEnvironment): unknown[] {
  const seen: unknown[] = [];
  env.on('heartbeat', (d: unknown) => seen.push(d));
  return seen;
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    failures.push(err);
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected the activity to fail');
}

const dispatches = () => fake.requests.filter((r) => r.method === 'POST');
const build = { ref: 'v1.2.0', commit: COMMIT, version: 'v1.2.0' };

describe('triggerBuild', () => {
  it('dispatches the workflow with the version and commit and returns the run GitHub names', async () => {
    const env = activityEnv();
    const beats = heartbeatsOf(env);
    const result = await run(ci().triggerBuild, build, env);
    const created = fake.runs[0]!;
    expect(result).toEqual({
      runId: created.id,
      runUrl: `https://github.com/${OWNER}/${REPO}/actions/runs/${created.id}`,
      status: 'queued',
      commit: COMMIT,
      version: 'v1.2.0',
      reused: false,
    });
    expect(JSON.parse(dispatches()[0]!.body)).toEqual({
      ref: 'v1.2.0',
      inputs: { version: 'v1.2.0', commit: COMMIT },
      return_run_details: true,
    });
    expect(beats[0]).toMatchObject({ commit: COMMIT, version: 'v1.2.0', runId: created.id });
  });

  it('finds the run by commit and title when the dispatch answers 204', async () => {
    fake.supportsRunDetails = false;
    fake.listDelay = 2;
    // Runs that must not be taken: an rc of the same commit, another workflow, another event.
    fake.addRun(workflow, { headSha: COMMIT, inputs: { version: 'v1.2.0-rc1', commit: COMMIT } });
    const lint = fake.addWorkflow({ file: 'lint.yml', name: 'Lint', runName: 'Lint {version}' });
    fake.addRun(lint, { headSha: COMMIT, inputs: { version: 'v1.2.0' } });
    fake.addRun(workflow, { headSha: COMMIT, inputs: { version: 'v1.2.0', commit: COMMIT }, event: 'push' });
    const result = await run(ci({ returnRunDetails: false }).triggerBuild, build);
    const created = fake.runs.at(-1)!;
    expect(created.title).toBe(`Build v1.2.0 (${COMMIT})`);
    expect(result).toMatchObject({ runId: created.id, reused: false });
    expect(JSON.parse(dispatches()[0]!.body)).not.toHaveProperty('return_run_details');
    expect(
      fake.requests.filter((r) => r.url.pathname.endsWith('/actions/runs')).length,
    ).toBeGreaterThanOrEqual(3);
  });

  it('returns an existing run of the same commit and version instead of dispatching again', async () => {
    const existing = fake.addRun(workflow, {
      headSha: COMMIT,
      inputs: { version: 'v1.2.0', commit: COMMIT },
    });
    const result = await run(ci().triggerBuild, build);
    expect(result).toMatchObject({ runId: existing.id, reused: true });
    expect(dispatches()).toHaveLength(0);
  });

  it('a retry after a dispatch keeps looking for that run and never dispatches twice', async () => {
    fake.supportsRunDetails = false;
    // The run stays invisible until the first attempt is gone (GitHub lists runs some seconds late).
    fake.listDelay = 1_000_000;
    const ids = { workflowExecution: { workflowId: `ci-retry-${Date.now()}`, runId: 'r1' }, activityId: '4' };
    const first = activityEnv(ids);
    const beats = heartbeatsOf(first);
    const pending = run(ci().triggerBuild, build, first);
    await vi.waitFor(() => expect(beats.length).toBeGreaterThan(0));
    first.cancel();
    await expect(pending).rejects.toBeInstanceOf(CancelledFailure);
    expect(beats[0]).toMatchObject({ commit: COMMIT, version: 'v1.2.0' });
    expect(beats[0]).not.toHaveProperty('runId');
    fake.runs[0]!.listingsUntilVisible = 0;

    const second = activityEnv({ ...ids, attempt: 2, heartbeatDetails: beats.at(-1) });
    const result = await run(ci().triggerBuild, build, second);
    expect(result.runId).toBe(fake.runs[0]!.id);
    expect(dispatches()).toHaveLength(1);
    expect(fake.runs).toHaveLength(1);
  });

  it('a retry with the run id in its heartbeat returns that run without looking further', async () => {
    const ids = {
      workflowExecution: { workflowId: `ci-retry2-${Date.now()}`, runId: 'r1' },
      activityId: '5',
    };
    const first = activityEnv(ids);
    const beats = heartbeatsOf(first);
    const created = await run(ci().triggerBuild, build, first);
    fake.server.reset();
    const again = await run(
      ci().triggerBuild,
      build,
      activityEnv({ ...ids, attempt: 2, heartbeatDetails: beats.at(-1) }),
    );
    expect(again).toMatchObject({ runId: created.runId, reused: true });
    expect(fake.requests.map((r) => `${r.method} ${r.url.pathname}`)).toEqual([
      `GET /repos/${OWNER}/${REPO}/actions/runs/${created.runId}`,
    ]);
  });

  it('refuses to dispatch when the ref does not point at the commit', async () => {
    fake.refs.set('main', OTHER_COMMIT);
    const f = await failureOf(run(ci().triggerBuild, { ...build, ref: 'main' }));
    expect(f.type).toBe('PolicyViolation');
    expect(f.nonRetryable).toBe(true);
    expect(dispatches()).toHaveLength(0);
  });

  it('fails non-retryably, naming run-name, when no run with the version in its title appears', async () => {
    fake.reset();
    fake.refs.set('v1.2.0', COMMIT);
    fake.addWorkflow({ file: 'build.yml', runName: undefined });
    fake.supportsRunDetails = false;
    const f = await failureOf(run(ci({ findRunTimeoutMs: 100 }).triggerBuild, build));
    expect(f.type).toBe('UpstreamRejected');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('run-name');
  });

  it('classifies GitHub refusals: bad token, unknown workflow, no dispatch trigger, unknown input', async () => {
    const badToken = await failureOf(run(ci({ token: 'ghp_wrong_token_zz' }).triggerBuild, build));
    expect(badToken.type).toBe('Unauthorized');
    expect(serialisedFailure(badToken)).not.toContain('ghp_wrong_token_zz');

    const unknown = await failureOf(run(ci({ workflowFile: 'deploy.yml' }).triggerBuild, build));
    expect(unknown.type).toBe('NotFound');

    fake.addWorkflow({ file: 'nightly.yml', inputs: undefined });
    const noTrigger = await failureOf(run(ci({ workflowFile: 'nightly.yml' }).triggerBuild, build));
    expect(noTrigger.type).toBe('UpstreamRejected');
    expect(noTrigger.message).toContain('workflow_dispatch');

    fake.addWorkflow({ file: 'old.yml', inputs: [{ name: 'version', required: true }] });
    const inputs = await failureOf(run(ci({ workflowFile: 'old.yml' }).triggerBuild, build));
    expect(inputs.type).toBe('UpstreamRejected');
    expect(inputs.message).toContain('Unexpected inputs');
  });

  it('turns an exhausted rate limit (403, remaining 0) into a retryable RateLimited until the reset', async () => {
    fake.exhaustRateLimit();
    const f = await failureOf(run(ci().triggerBuild, build));
    expect(f.type).toBe('RateLimited');
    expect(f.nonRetryable).toBe(false);
    expect(f.nextRetryDelay).toBeGreaterThanOrEqual(28_000);
    expect(f.nextRetryDelay).toBeLessThanOrEqual(31_000);
  });

  it('retries on server errors and dropped connections', async () => {
    fake.server.scriptNext({ status: 502, body: { message: 'Server Error' } });
    const f = await failureOf(run(ci().triggerBuild, build));
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
    fake.server.scriptNext({ dropConnection: true });
    const dropped = await failureOf(run(ci().triggerBuild, build));
    expect(dropped.type).toBe('UpstreamUnavailable');
  });

  it('refuses malformed input', async () => {
    const f = await failureOf(run(ci().triggerBuild, { ...build, commit: 'abc123' }));
    expect(f.type).toBe('InvalidInput');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('waitForBuild', () => {
  async function dispatched(plan: 'success' | 'failure' | 'cancelled' | 'never' = 'success') {
    fake.nextConclusions.push(plan);
    return run(ci().triggerBuild, build);
  }

  it('follows the run to success, heartbeating its status', async () => {
    const { runId } = await dispatched();
    const env = activityEnv();
    const beats = heartbeatsOf(env) as { status: string; polls: number }[];
    const result = await run(ci().waitForBuild, { runId }, env);
    // triggerBuild read the run once already (queued); two more polls: in_progress, completed.
    expect(result).toMatchObject({ runId, conclusion: 'success', headSha: COMMIT, polls: 2 });
    expect(result.runUrl).toBe(`https://github.com/${OWNER}/${REPO}/actions/runs/${runId}`);
    expect(beats.map((b) => b.status)).toEqual(['in_progress']);
  });

  it.each(['failure', 'cancelled'] as const)(
    'fails non-retryably with OperationFailed and the run URL when the run concludes %s',
    async (conclusion) => {
      const { runId, runUrl } = await dispatched(conclusion);
      const f = await failureOf(run(ci().waitForBuild, { runId }));
      expect(f.type).toBe('OperationFailed');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain(runUrl);
      expect(f.message).toContain(conclusion);
      expect(f.details?.[0]).toMatchObject({ runId, runUrl, conclusion });
    },
  );

  it('stops waiting when the activity is cancelled', async () => {
    const { runId } = await dispatched('never');
    const env = activityEnv();
    const beats = heartbeatsOf(env);
    const waiting = run(ci().waitForBuild, { runId }, env);
    await vi.waitFor(() => expect(beats.length).toBeGreaterThan(2));
    env.cancel();
    await expect(waiting).rejects.toBeInstanceOf(CancelledFailure);
  });

  it('resumes from the heartbeat of a previous attempt', async () => {
    const { runId } = await dispatched();
    const startedAtMs = Date.now() - 600_000;
    const env = activityEnv({
      attempt: 2,
      heartbeatDetails: { runId, status: 'in_progress', startedAtMs, elapsedMs: 599_000, polls: 60 },
    });
    const beats = heartbeatsOf(env) as { startedAtMs: number; polls: number }[];
    const result = await run(ci().waitForBuild, { runId }, env);
    expect(result.elapsedMs).toBeGreaterThanOrEqual(600_000);
    expect(result.polls).toBe(62);
    expect(beats[0]).toMatchObject({ startedAtMs, polls: 61 });
  });

  it('fails with NotFound for an unknown run and retryably on a server error', async () => {
    const missing = await failureOf(run(ci().waitForBuild, { runId: 42 }));
    expect(missing.type).toBe('NotFound');
    fake.server.scriptNext({ status: 503, headers: { 'retry-after': '5' } });
    const f = await failureOf(run(ci().waitForBuild, { runId: 42 }));
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nextRetryDelay).toBe(5_000);
  });
});

describe('titleNamesVersion', () => {
  it.each([
    ['Build v1.2.0 (abc)', 'v1.2.0', true],
    ['v1.2.0', 'v1.2.0', true],
    ['Build v1.2.0-rc1', 'v1.2.0', false],
    ['Build v1.2.0.1', 'v1.2.0', false],
    ['Build xv1.2.0', 'v1.2.0', false],
    ['release: v1.2.0-rc1', 'v1.2.0-rc1', true],
  ])('%j names %s: %s', (title, version, expected) => {
    expect(titleNamesVersion(title, version)).toBe(expected);
  });
});
