/**
 * The Grafana annotation activity against the Grafana fake (src/sandbox/fakes/grafana-fake.ts).
 */
import type { Info } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type GrafanaActivitiesOptions,
  annotationIdempotencyTag,
  createGrafanaActivities,
} from '../../../src/activities/grafana/grafana-activities';
import { GrafanaFake } from '../../../src/sandbox/fakes/grafana-fake';
import { serialisedFailure } from '../../../src/sandbox/fakes/scripted-http-server';
import { freeLocalPort } from '../../support/prometheus-server';
import { activityRecorder } from '../activity-recorder';

const TOKEN = 'glsa_grafana-token-5e0a77c1d9';

let grafana: GrafanaFake;
let workflowCounter = 0;

beforeAll(async () => {
  grafana = await GrafanaFake.start({ token: TOKEN, dashboards: ['release-overview'] });
});
afterAll(() => grafana?.close());
afterEach(() => {
  expect(grafana.server.violations).toEqual([]);
  grafana.server.reset();
});

const options = (extra: Partial<GrafanaActivitiesOptions> = {}): GrafanaActivitiesOptions => ({
  baseUrl: grafana.baseUrl,
  token: TOKEN,
  timeoutMs: 2_000,
  ...extra,
});

/** An activity context: a fresh workflow per call unless `workflowId` is given; `attempt` for retries. */
function newEnv(info: { workflowId?: string; activityId?: string; attempt?: number } = {}) {
  const workflowId = info.workflowId ?? `release-${++workflowCounter}`;
  const partial: Partial<Info> = {
    activityId: info.activityId ?? 'annotate-1',
    attempt: info.attempt ?? 1,
    workflowExecution: { workflowId, runId: 'run-1' },
  };
  return new MockActivityEnvironment(partial, { logger: new DefaultLogger('ERROR') });
}

const { seen, run, failureOf } = activityRecorder(() => newEnv());

describe('annotate', () => {
  it('adds an organization annotation with the tags, the time and its idempotency tag', async () => {
    const res = await run(
      () =>
        createGrafanaActivities(options()).annotate({
          text: 'Deployed v1.2.0 to production (blue)',
          tags: ['deploy', 'production'],
          time: '2026-10-14T10:00:00Z',
        }),
      newEnv({ workflowId: 'release-v1.2.0' }),
    );
    expect(res.created).toBe(true);
    expect(res.idempotencyTag).toBe(annotationIdempotencyTag('release-v1.2.0/annotate-1'));
    const stored = grafana.annotations.find((a) => a.id === res.annotationId);
    expect(stored).toMatchObject({
      text: 'Deployed v1.2.0 to production (blue)',
      tags: ['deploy', 'production', res.idempotencyTag],
      time: Date.parse('2026-10-14T10:00:00Z'),
      dashboardUID: '',
    });
    expect(grafana.server.requests.map((r) => r.method)).toEqual(['GET', 'POST']);
    expect(grafana.server.requests[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('does not add a second annotation when the activity runs again', async () => {
    const acts = createGrafanaActivities(options());
    const input = { text: 'Rolled back to v1.1.9', tags: ['rollback'] };
    const first = await run(() => acts.annotate(input), newEnv({ workflowId: 'rollback-7' }));
    const again = await run(() => acts.annotate(input), newEnv({ workflowId: 'rollback-7', attempt: 2 }));
    expect(again).toEqual({ ...first, created: false });
    expect(grafana.annotations.filter((a) => a.tags.includes(first.idempotencyTag))).toHaveLength(1);
    const other = await run(
      () => acts.annotate(input),
      newEnv({ workflowId: 'rollback-7', activityId: 'annotate-2' }),
    );
    expect(other.created).toBe(true);
    expect(other.annotationId).not.toBe(first.annotationId);
  });

  it('finds the annotation an attempt made whose answer was lost', async () => {
    const acts = createGrafanaActivities(options());
    const input = { text: 'Canary widened to 25 %', tags: ['canary'], dashboardUid: 'release-overview' };
    grafana.server.scriptNext({ loseResponse: true }, (r) => r.method === 'POST');
    const lost = await failureOf(newEnv({ workflowId: 'canary-3' }).run(() => acts.annotate(input)));
    expect(lost.type).toBe('UpstreamUnavailable');
    expect(lost.nonRetryable).toBe(false);
    const retry = await run(() => acts.annotate(input), newEnv({ workflowId: 'canary-3', attempt: 2 }));
    expect(retry.created).toBe(false);
    const mine = grafana.annotations.filter((a) => a.tags.includes(retry.idempotencyTag));
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ id: retry.annotationId, dashboardUID: 'release-overview' });
  });

  it('marks a region with timeEnd and sends the org id', async () => {
    const res = await run(() =>
      createGrafanaActivities(options({ orgId: 1 })).annotate({
        text: 'Maintenance window',
        time: '2026-10-14T10:00:00Z',
        timeEnd: '2026-10-14T10:30:00Z',
      }),
    );
    expect(grafana.annotations.find((a) => a.id === res.annotationId)?.timeEnd).toBe(
      Date.parse('2026-10-14T10:30:00Z'),
    );
    expect(grafana.server.requests[1]?.headers['x-grafana-org-id']).toBe('1');
  });
});

describe('failures', () => {
  it('refuses bad input before calling Grafana', async () => {
    const f = await failureOf(
      newEnv().run(() => createGrafanaActivities(options()).annotate({ text: '', tags: ['x'] })),
    );
    expect(f.type).toBe('InvalidInput');
    expect(grafana.server.requests).toHaveLength(0);
  });

  it('reports a wrong token as Unauthorized without echoing it', async () => {
    const f = await failureOf(
      newEnv().run(() =>
        createGrafanaActivities(options({ token: 'glsa_wrong-token-0000' })).annotate({ text: 'x' }),
      ),
    );
    expect(f.type).toBe('Unauthorized');
    expect(f.nonRetryable).toBe(true);
    expect(serialisedFailure(f)).not.toContain('glsa_wrong-token-0000');
    expect(grafana.server.violations).toEqual(['401: Invalid API key']);
    grafana.server.reset();
  });

  it('reports a token without annotations:create as Unauthorized, naming the permission', async () => {
    const limited = await GrafanaFake.start({ token: TOKEN, permissions: ['annotations:read'] });
    try {
      const f = await failureOf(
        newEnv().run(() =>
          createGrafanaActivities(options({ baseUrl: limited.baseUrl })).annotate({ text: 'x' }),
        ),
      );
      expect(f.type).toBe('Unauthorized');
      expect(f.message).toContain('annotations:create');
    } finally {
      await limited.close();
    }
  });

  it('reports an unknown dashboard as NotFound', async () => {
    const f = await failureOf(
      newEnv().run(() => createGrafanaActivities(options()).annotate({ text: 'x', dashboardUid: 'nope' })),
    );
    expect(f.type).toBe('NotFound');
    grafana.server.reset();
  });

  it.each([
    [
      { status: 429, headers: { 'retry-after': '30' }, body: { message: 'Too many requests' } },
      'RateLimited',
      false,
      30_000,
    ],
    [
      { status: 500, body: { message: 'Failed to save annotation' } },
      'UpstreamUnavailable',
      false,
      undefined,
    ],
    [{ status: 502, body: '<html>Bad Gateway</html>' }, 'UpstreamUnavailable', false, undefined],
    [{ status: 400, body: { message: 'bad request data' } }, 'UpstreamRejected', true, undefined],
    [{ status: 200, body: { message: 'Annotation added' } }, 'ContractViolation', true, undefined],
  ])('classifies %j on POST as %s', async (answer, type, nonRetryable, delay) => {
    grafana.server.scriptNext(answer, (r) => r.method === 'POST');
    const f = await failureOf(newEnv().run(() => createGrafanaActivities(options()).annotate({ text: 'x' })));
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(nonRetryable);
    expect(f.nextRetryDelay).toBe(delay);
  });

  it('reports a search answer that is not a list as ContractViolation, before creating anything', async () => {
    grafana.server.scriptNext({ status: 200, body: { annotations: [] } });
    const f = await failureOf(newEnv().run(() => createGrafanaActivities(options()).annotate({ text: 'x' })));
    expect(f.type).toBe('ContractViolation');
    expect(grafana.server.requests.map((r) => r.method)).toEqual(['GET']);
  });

  it('reports Grafana being down as retryable UpstreamUnavailable', async () => {
    const port = await freeLocalPort();
    const f = await failureOf(
      newEnv().run(() =>
        createGrafanaActivities(options({ baseUrl: `http://127.0.0.1:${port}` })).annotate({ text: 'x' }),
      ),
    );
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
  });

  it('follows the cancellation of the activity', async () => {
    grafana.server.scriptNext({ hang: true });
    const env = newEnv();
    const pending = env
      .run(() => createGrafanaActivities(options()).annotate({ text: 'x' }))
      .then(
        () => 'finished',
        (err: unknown) => err,
      );
    await vi.waitFor(() => expect(grafana.server.hangingRequests).toBe(1), { timeout: 5_000, interval: 20 });
    env.cancel();
    const err = await pending;
    seen.push(serialisedFailure(err));
    expect(err).toBeInstanceOf(CancelledFailure);
  });
});

describe('credentials', () => {
  it('never lets the token into a result or a failure (checked over everything this file saw)', () => {
    expect(seen.length).toBeGreaterThan(10);
    for (const text of seen) expect(text).not.toContain(TOKEN);
  });
});
