import type { Info } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CoolifyActivities } from '../../../src/activities/coolify/coolify-activities';
import { createCoolifyActivities } from '../../../src/activities/coolify/coolify-activities';
import { isAtLeast, parseCoolifyVersion } from '../../../src/activities/coolify/coolify-api';
import { CoolifyFake } from '../../../src/sandbox/fakes/coolify-fake';
import { serialisedFailure } from '../../../src/sandbox/fakes/scripted-http-server';

const TOKEN = 'coolify-test-token-8f2c1d';
const READ_ONLY_TOKEN = 'coolify-read-only-token-77aa';

let fake: CoolifyFake;
let coolify: CoolifyActivities;
const failures: unknown[] = [];
let seq = 0;

beforeAll(async () => {
  fake = await CoolifyFake.start({ token: TOKEN, readOnlyToken: READ_ONLY_TOKEN });
  coolify = createCoolifyActivities({ baseUrl: fake.baseUrl, token: TOKEN, pollIntervalMs: 5 });
});
afterAll(async () => {
  for (const f of failures) expect(serialisedFailure(f)).not.toContain(TOKEN);
  await fake.close();
});
beforeEach(() => fake.reset());
afterEach(() => {
  expect(fake.violations).toEqual([]);
});

/** A fresh activity context: unique workflow and activity ids, scheduled now. */
function activityEnv(info: Partial<Info> = {}): MockActivityEnvironment {
  seq += 1;
  return new MockActivityEnvironment({
    workflowExecution: { workflowId: `coolify-test-${seq}-${Date.now()}`, runId: `run-${seq}` },
    activityId: `${seq}`,
    scheduledTimestampMs: Date.now(),
    currentAttemptScheduledTimestampMs: Date.now(),
    ...info,
  });
}

/** Runs an activity in `env`, typed as the activity is. */
function run<I, O>(env: MockActivityEnvironment, fn: (input: I) => Promise<O>, input: I): Promise<O> {
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

const requestsOf = (operationId: string) => fake.requests.filter((r) => r.operationId === operationId);

describe('deployApplication', () => {
  it('pins the image tag on the application and queues one deployment', async () => {
    fake.addApplication({ uuid: 'app-staging', docker_registry_image_tag: 'v1.0.0' });
    const env = activityEnv();
    const beats = heartbeatsOf(env);
    const result = await run(env, coolify.deployApplication, {
      applicationUuid: 'app-staging',
      imageTag: 'v1.1.0',
    });
    expect(result).toMatchObject({ applicationUuid: 'app-staging', imageTag: 'v1.1.0', reused: false });
    expect(fake.deployment(result.deploymentUuid)?.status).toBe('queued');
    expect(fake.applications.get('app-staging')?.docker_registry_image_tag).toBe('v1.1.0');
    expect(JSON.parse(requestsOf('update-application-by-uuid')[0]?.body ?? '{}')).toEqual({
      docker_registry_image_tag: 'v1.1.0',
    });
    expect(requestsOf('deploy-by-tag-or-uuid').map((r) => r.query.get('uuid'))).toEqual(['app-staging']);
    expect(beats.at(-1)).toMatchObject({ deploymentUuid: result.deploymentUuid, imageTag: 'v1.1.0' });
  });

  it('does not touch the application when the tag is already pinned', async () => {
    fake.addApplication({ uuid: 'app-pinned', docker_registry_image_tag: 'v1.1.0' });
    await run(activityEnv(), coolify.deployApplication, {
      applicationUuid: 'app-pinned',
      imageTag: 'v1.1.0',
    });
    expect(requestsOf('update-application-by-uuid')).toHaveLength(0);
    expect(fake.deployments).toHaveLength(1);
  });

  it('a retry returns the deployment its earlier attempt queued instead of queueing another', async () => {
    fake.addApplication({ uuid: 'app-retry' });
    const ids = { workflowExecution: { workflowId: `retry-${Date.now()}`, runId: 'r1' }, activityId: '7' };
    const first = activityEnv(ids);
    const beats = heartbeatsOf(first);
    const queued = await run(first, coolify.deployApplication, {
      applicationUuid: 'app-retry',
      imageTag: 'v2.0.0',
    });
    const second = activityEnv({ ...ids, attempt: 2, heartbeatDetails: beats.at(-1) });
    const again = await run(second, coolify.deployApplication, {
      applicationUuid: 'app-retry',
      imageTag: 'v2.0.0',
    });
    expect(again).toEqual({ ...queued, reused: true });
    expect(requestsOf('deploy-by-tag-or-uuid')).toHaveLength(1);
    expect(fake.deployments).toHaveLength(1);
  });

  it('does not reuse details heartbeated by another activity', async () => {
    fake.addApplication({ uuid: 'app-other' });
    const stale = {
      key: 'someone-else/1',
      applicationUuid: 'app-other',
      imageTag: 'v2.0.0',
      deploymentUuid: 'x',
    };
    const result = await run(activityEnv({ heartbeatDetails: stale }), coolify.deployApplication, {
      applicationUuid: 'app-other',
      imageTag: 'v2.0.0',
    });
    expect(result.reused).toBe(false);
    expect(requestsOf('deploy-by-tag-or-uuid')).toHaveLength(1);
  });

  it('waits (retryable) while another deployment of the application is in flight, changing nothing', async () => {
    const app = fake.addApplication({ uuid: 'app-busy', docker_registry_image_tag: 'v1.0.0' });
    const running = fake.addDeployment(app, 'in_progress');
    const f = await failureOf(
      run(activityEnv(), coolify.deployApplication, { applicationUuid: 'app-busy', imageTag: 'v1.1.0' }),
    );
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toContain(running.deployment_uuid);
    expect(app.docker_registry_image_tag).toBe('v1.0.0');
    expect(requestsOf('deploy-by-tag-or-uuid')).toHaveLength(0);
  });

  it('detects the uuid Coolify answers when it skipped the request, and retries', async () => {
    const app = fake.addApplication({ uuid: 'app-race' });
    // Someone else's deployment lands between our check and our POST.
    fake.beforeNext('deploy-by-tag-or-uuid', () => fake.addDeployment(app, 'queued'));
    const f = await failureOf(
      run(activityEnv(), coolify.deployApplication, { applicationUuid: 'app-race', imageTag: 'v1.1.0' }),
    );
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.message).toContain('Deployment already queued for this commit.');
    expect(fake.deployments).toHaveLength(1);
  });

  it('reports a deploy Coolify refused for the team role (200 without a deployment) as Unauthorized', async () => {
    fake.addApplication({ uuid: 'app-role' });
    fake.deployRefusal = 'Unauthorized to deploy this application.';
    const f = await failureOf(
      run(activityEnv(), coolify.deployApplication, { applicationUuid: 'app-role', imageTag: 'v1.1.0' }),
    );
    expect(f.type).toBe('Unauthorized');
    expect(f.nonRetryable).toBe(true);
  });

  it('fails non-retryably on a wrong token and on a token without the write ability', async () => {
    fake.addApplication({ uuid: 'app-auth' });
    const wrong = createCoolifyActivities({ baseUrl: fake.baseUrl, token: 'not-the-token' });
    const f401 = await failureOf(
      run(activityEnv(), wrong.deployApplication, { applicationUuid: 'app-auth', imageTag: 'v1.1.0' }),
    );
    expect(f401.type).toBe('Unauthorized');
    expect(f401.nonRetryable).toBe(true);
    expect(serialisedFailure(f401)).not.toContain('not-the-token');

    const readOnly = createCoolifyActivities({ baseUrl: fake.baseUrl, token: READ_ONLY_TOKEN });
    const f403 = await failureOf(
      run(activityEnv(), readOnly.deployApplication, { applicationUuid: 'app-auth', imageTag: 'v1.1.0' }),
    );
    expect(f403.type).toBe('Unauthorized');
    expect(f403.message).toContain('Missing required permissions: write');
    expect(serialisedFailure(f403)).not.toContain(READ_ONLY_TOKEN);
  });

  it('fails with NotFound for an unknown application', async () => {
    const f = await failureOf(
      run(activityEnv(), coolify.deployApplication, { applicationUuid: 'no-such-app', imageTag: 'v1.1.0' }),
    );
    expect(f.type).toBe('NotFound');
    expect(f.nonRetryable).toBe(true);
  });

  it('honours Retry-After when the deployment queue is full (429)', async () => {
    fake.addApplication({ uuid: 'app-full' });
    fake.queueLimit = 0;
    const f = await failureOf(
      run(activityEnv(), coolify.deployApplication, { applicationUuid: 'app-full', imageTag: 'v1.1.0' }),
    );
    expect(f.type).toBe('RateLimited');
    expect(f.nonRetryable).toBe(false);
    expect(f.nextRetryDelay).toBe(60_000);
  });

  it('retries on a server error', async () => {
    fake.addApplication({ uuid: 'app-5xx' });
    fake.inject({ operationId: 'deploy-by-tag-or-uuid', status: 503, retryAfterSeconds: 2 });
    const f = await failureOf(
      run(activityEnv(), coolify.deployApplication, { applicationUuid: 'app-5xx', imageTag: 'v1.1.0' }),
    );
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
    expect(f.nextRetryDelay).toBe(2_000);
  });

  it('refuses applications that are not Docker-image applications, and malformed input', async () => {
    fake.addApplication({ uuid: 'app-git', build_pack: 'nixpacks' });
    const git = await failureOf(
      run(activityEnv(), coolify.deployApplication, { applicationUuid: 'app-git', imageTag: 'v1.1.0' }),
    );
    expect(git.type).toBe('InvalidInput');
    expect(git.message).toContain('nixpacks');
    const bad = await failureOf(
      run(activityEnv(), coolify.deployApplication, { applicationUuid: 'app-git', imageTag: '-not a tag' }),
    );
    expect(bad.type).toBe('InvalidInput');
    expect(fake.deployments).toHaveLength(0);
  });

  it('reports an answer that breaks the contract as ContractViolation', async () => {
    fake.addApplication({ uuid: 'app-contract' });
    fake.corruptNext('deploy-by-tag-or-uuid', () => ({ deployments: 'queued' }));
    const f = await failureOf(
      run(activityEnv(), coolify.deployApplication, { applicationUuid: 'app-contract', imageTag: 'v1.1.0' }),
    );
    expect(f.type).toBe('ContractViolation');
    expect(f.nonRetryable).toBe(true);
    // The fake's own check saw the broken answer too.
    expect(fake.violations).toEqual(['POST /deploy -> 200 body: /deployments must be array']);
    fake.violations.length = 0;
  });
});

describe('waitForDeployment', () => {
  it('follows a deployment from queued to finished, heartbeating status and elapsed time', async () => {
    const app = fake.addApplication({ uuid: 'app-wait', docker_registry_image_tag: 'v1.1.0' });
    const d = fake.addDeployment(app, 'queued');
    const env = activityEnv();
    const beats = heartbeatsOf(env) as { status: string; elapsedMs: number; polls: number }[];
    const result = await run(env, coolify.waitForDeployment, { deploymentUuid: d.deployment_uuid });
    expect(result).toMatchObject({ deploymentUuid: d.deployment_uuid, status: 'finished', polls: 4 });
    expect(result.deploymentUrl).toMatch(
      new RegExp(`^http://127\\.0\\.0\\.1:\\d+/project/.+/${d.deployment_uuid}$`),
    );
    expect(beats.map((b) => b.status)).toEqual(['queued', 'in_progress', 'in_progress']);
    expect(beats.map((b) => b.polls)).toEqual([1, 2, 3]);
    expect(beats.every((b) => b.elapsedMs >= 0)).toBe(true);
    expect(app.runningTag).toBe('v1.1.0');
  });

  it.each([
    ['failed', 'failed'],
    ['cancelled-by-user', 'was cancelled by a user'],
  ] as const)(
    'fails non-retryably with OperationFailed when the deployment ends %s',
    async (outcome, said) => {
      const app = fake.addApplication({ uuid: `app-${outcome}` });
      const d = fake.addDeployment(app, 'queued', outcome);
      const f = await failureOf(
        run(activityEnv(), coolify.waitForDeployment, { deploymentUuid: d.deployment_uuid }),
      );
      expect(f.type).toBe('OperationFailed');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain(said);
      expect(f.details?.[0]).toMatchObject({ deploymentUuid: d.deployment_uuid, status: outcome });
      expect((f.details?.[0] as { deploymentUrl: string }).deploymentUrl).toContain(d.deployment_uuid);
    },
  );

  it('stops waiting when the activity is cancelled', async () => {
    const app = fake.addApplication({ uuid: 'app-cancel' });
    const d = fake.addDeployment(app, 'in_progress', 'never');
    const env = activityEnv();
    const beats = heartbeatsOf(env);
    const waiting = run(env, coolify.waitForDeployment, { deploymentUuid: d.deployment_uuid });
    await vi.waitFor(() => expect(beats.length).toBeGreaterThan(2), { timeout: 5_000 });
    env.cancel();
    await expect(waiting).rejects.toBeInstanceOf(CancelledFailure);
    // The Coolify deployment itself is left alone (cancelDeployment is the compensation).
    expect(d.status).toBe('in_progress');
  });

  it('resumes from the heartbeat of a previous attempt: the clock and the poll count go on', async () => {
    const app = fake.addApplication({ uuid: 'app-resume' });
    const d = fake.addDeployment(app, 'in_progress');
    const startedAtMs = Date.now() - 120_000;
    const env = activityEnv({
      attempt: 3,
      heartbeatDetails: {
        deploymentUuid: d.deployment_uuid,
        status: 'in_progress',
        startedAtMs,
        elapsedMs: 119_000,
        polls: 40,
      },
    });
    const beats = heartbeatsOf(env) as { startedAtMs: number; polls: number }[];
    const result = await run(env, coolify.waitForDeployment, { deploymentUuid: d.deployment_uuid });
    expect(result.elapsedMs).toBeGreaterThanOrEqual(120_000);
    expect(result.polls).toBeGreaterThan(40);
    expect(beats[0]).toMatchObject({ startedAtMs, polls: 41 });
  });

  it('ignores heartbeat details of another deployment', async () => {
    const app = fake.addApplication({ uuid: 'app-resume-other' });
    const d = fake.addDeployment(app, 'in_progress');
    const env = activityEnv({
      heartbeatDetails: {
        deploymentUuid: 'other',
        status: 'queued',
        startedAtMs: 0,
        elapsedMs: 5,
        polls: 99,
      },
    });
    const result = await run(env, coolify.waitForDeployment, { deploymentUuid: d.deployment_uuid });
    expect(result.polls).toBeLessThan(10);
    expect(result.elapsedMs).toBeLessThan(60_000);
  });

  it('fails with NotFound for an unknown deployment, and retryably on a server error', async () => {
    const missing = await failureOf(
      run(activityEnv(), coolify.waitForDeployment, { deploymentUuid: 'nope' }),
    );
    expect(missing.type).toBe('NotFound');
    const app = fake.addApplication({ uuid: 'app-wait-5xx' });
    const d = fake.addDeployment(app, 'in_progress');
    fake.inject({ operationId: 'get-deployment-by-uuid', status: 502 });
    const f = await failureOf(
      run(activityEnv(), coolify.waitForDeployment, { deploymentUuid: d.deployment_uuid }),
    );
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
  });

  it('reports a status outside the server enum as ContractViolation', async () => {
    const app = fake.addApplication({ uuid: 'app-odd' });
    const d = fake.addDeployment(app, 'in_progress');
    fake.corruptNext('get-deployment-by-uuid', (body) => ({ ...body, status: 'exploded' }));
    const f = await failureOf(
      run(activityEnv(), coolify.waitForDeployment, { deploymentUuid: d.deployment_uuid }),
    );
    expect(f.type).toBe('ContractViolation');
  });
});

describe('deployPreviousRevision', () => {
  async function rollBackAndWait(uuid: string) {
    const rolled = await run(activityEnv(), coolify.deployPreviousRevision, {
      applicationUuid: uuid,
      previousImageTag: 'v1.0.0',
    });
    await run(activityEnv(), coolify.waitForDeployment, { deploymentUuid: rolled.deploymentUuid });
    return rolled;
  }

  it('uses the rollback endpoint on Coolify >= 4.3.0 when the image is still on the server', async () => {
    const app = fake.addApplication({
      uuid: 'app-rb',
      docker_registry_image_tag: 'v1.1.0',
      runningTag: 'v1.1.0',
      localImageTags: ['v1.0.0', 'v1.1.0'],
    });
    const rolled = await rollBackAndWait('app-rb');
    expect(rolled).toMatchObject({ method: 'rollback-endpoint', coolifyVersion: '4.3.10', reused: false });
    expect(JSON.parse(requestsOf('rollback-application-by-uuid')[0]?.body ?? '{}')).toEqual({
      commit: 'v1.0.0',
    });
    expect(fake.deployment(rolled.deploymentUuid)?.rollback).toBe(true);
    expect(requestsOf('deploy-by-tag-or-uuid')).toHaveLength(0);
    // A Docker-image deployment runs the tag pinned on the application: the rollback really runs v1.0.0.
    expect(app.runningTag).toBe('v1.0.0');
  });

  it('redeploys the pinned tag when Coolify lists no rollback images', async () => {
    const app = fake.addApplication({ uuid: 'app-rb-empty', docker_registry_image_tag: 'v1.1.0' });
    fake.serverFunctional = false;
    const rolled = await rollBackAndWait('app-rb-empty');
    expect(rolled.method).toBe('redeploy-pinned-tag');
    expect(rolled.reason).toContain('no rollback images');
    expect(requestsOf('rollback-application-by-uuid')).toHaveLength(0);
    expect(app.runningTag).toBe('v1.0.0');
  });

  it('redeploys the pinned tag when the image is no longer on the server', async () => {
    fake.addApplication({
      uuid: 'app-rb-pruned',
      docker_registry_image_tag: 'v1.1.0',
      localImageTags: ['v1.1.0'],
    });
    const rolled = await rollBackAndWait('app-rb-pruned');
    expect(rolled.method).toBe('redeploy-pinned-tag');
    expect(rolled.reason).toContain('no longer on the server');
  });

  it.each(['4.2.0', '4.0.0-beta.400', 'v4.0.0'])(
    'redeploys the pinned tag on Coolify %s, which has no rollback endpoint',
    async (version) => {
      fake.version = version;
      const app = fake.addApplication({
        uuid: 'app-old',
        docker_registry_image_tag: 'v1.1.0',
        localImageTags: ['v1.0.0'],
      });
      const rolled = await rollBackAndWait('app-old');
      expect(rolled).toMatchObject({ method: 'redeploy-pinned-tag', coolifyVersion: version });
      expect(requestsOf('list-application-rollback-images')).toHaveLength(0);
      expect(app.runningTag).toBe('v1.0.0');
    },
  );

  it('a retry returns the rollback its earlier attempt queued', async () => {
    fake.addApplication({
      uuid: 'app-rb-retry',
      docker_registry_image_tag: 'v1.1.0',
      localImageTags: ['v1.0.0'],
    });
    const ids = { workflowExecution: { workflowId: `rb-retry-${Date.now()}`, runId: 'r1' }, activityId: '3' };
    const first = activityEnv(ids);
    const beats = heartbeatsOf(first);
    const input = { applicationUuid: 'app-rb-retry', previousImageTag: 'v1.0.0' };
    const queued = await run(first, coolify.deployPreviousRevision, input);
    const again = await run(
      activityEnv({ ...ids, attempt: 2, heartbeatDetails: beats.at(-1) }),
      coolify.deployPreviousRevision,
      input,
    );
    expect(again).toEqual({ ...queued, reused: true });
    expect(requestsOf('rollback-application-by-uuid')).toHaveLength(1);
  });

  it('retries after 60 s when the rollback route answers a full queue (400)', async () => {
    fake.addApplication({
      uuid: 'app-rb-full',
      docker_registry_image_tag: 'v1.1.0',
      localImageTags: ['v1.0.0'],
    });
    fake.queueLimit = 0;
    const f = await failureOf(
      run(activityEnv(), coolify.deployPreviousRevision, {
        applicationUuid: 'app-rb-full',
        previousImageTag: 'v1.0.0',
      }),
    );
    expect(f.type).toBe('RateLimited');
    expect(f.nextRetryDelay).toBe(60_000);
  });

  it('waits (retryable) while the application is busy, and fails on a wrong token', async () => {
    const app = fake.addApplication({ uuid: 'app-rb-busy', localImageTags: ['v1.0.0'] });
    fake.addDeployment(app, 'queued');
    const busy = await failureOf(
      run(activityEnv(), coolify.deployPreviousRevision, {
        applicationUuid: 'app-rb-busy',
        previousImageTag: 'v1.0.0',
      }),
    );
    expect(busy.type).toBe('UpstreamUnavailable');
    const wrong = createCoolifyActivities({ baseUrl: fake.baseUrl, token: 'wrong-token-123' });
    const f = await failureOf(
      run(activityEnv(), wrong.deployPreviousRevision, {
        applicationUuid: 'app-rb-busy',
        previousImageTag: 'v1.0.0',
      }),
    );
    expect(f.type).toBe('Unauthorized');
  });
});

describe('getApplicationStatus and cancelDeployment', () => {
  it('reports state, health and the pinned image', async () => {
    fake.addApplication({
      uuid: 'app-status',
      status: 'exited:unhealthy',
      docker_registry_image_tag: 'v1.2.0',
    });
    const status = await run(activityEnv(), coolify.getApplicationStatus, { applicationUuid: 'app-status' });
    expect(status).toMatchObject({
      state: 'exited',
      health: 'unhealthy',
      buildPack: 'dockerimage',
      imageName: 'registry.luxima.id/aceh-commerce',
      imageTag: 'v1.2.0',
    });
    const f = await failureOf(run(activityEnv(), coolify.getApplicationStatus, { applicationUuid: 'nope' }));
    expect(f.type).toBe('NotFound');
  });

  it('cancels a deployment in flight and treats an ended one as done', async () => {
    const app = fake.addApplication({ uuid: 'app-cancel-dep' });
    const d = fake.addDeployment(app, 'in_progress', 'never');
    const first = await run(activityEnv(), coolify.cancelDeployment, { deploymentUuid: d.deployment_uuid });
    expect(first).toEqual({
      deploymentUuid: d.deployment_uuid,
      status: 'cancelled-by-user',
      alreadyEnded: false,
    });
    const again = await run(activityEnv(), coolify.cancelDeployment, { deploymentUuid: d.deployment_uuid });
    expect(again).toEqual({
      deploymentUuid: d.deployment_uuid,
      status: 'cancelled-by-user',
      alreadyEnded: true,
    });
  });
});

describe('parseCoolifyVersion', () => {
  it.each([
    ['4.3.10', true],
    ['v4.3.0', true],
    ['4.3.0-beta.1', false],
    ['4.2.0', false],
    ['4.0.0-beta.400', false],
    ['5.0.0', true],
  ])('%s >= 4.3.0 is %s', (text, expected) => {
    const v = parseCoolifyVersion(text);
    expect(v && isAtLeast(v, 4, 3, 0)).toBe(expected);
  });

  it('does not recognise what is not a version', () => {
    expect(parseCoolifyVersion('<html>')).toBeUndefined();
  });
});
