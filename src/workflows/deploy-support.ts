/**
 * Building blocks shared by the strategy workflows, the release and the rollback: deploying an
 * application and waiting for it, smoke-checking it, reading which colour is live, sampling the health of
 * a service (M4, M2), and the saga that undoes completed steps in reverse.
 */
import {
  CancellationScope,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { PlatformActivities } from '../activities';
import type { DeploymentTarget } from '../config/platform-config';
import {
  fillQueryTemplate,
  logSelectorOf,
  type MonitoringSettings,
  type ReleaseService,
} from '../domain/release-settings';
import { FailureType, failure } from '../errors';
import type { Colour, DeployedApplication } from '../schemas/deployment';
import type { BakeSample, CompensationRecord, ReleaseStep, StrategyUndone } from '../schemas/release';
import { EXTERNAL_JOB, QUICK_CALL, READ_CALL } from './activity-options';
import { strategyUndoneSignal } from './definitions';
import { describeError } from './release-journal';

export const quick = proxyActivities<PlatformActivities>(QUICK_CALL);
export const read = proxyActivities<PlatformActivities>(READ_CALL);
export const job = proxyActivities<PlatformActivities>(EXTERNAL_JOB);

export const otherColour = (c: Colour): Colour => (c === 'blue' ? 'green' : 'blue');

/** The application of `target` for `colour`, or its only application. */
export function applicationOf(target: DeploymentTarget, colour: Colour | null): string {
  if ('application' in target) return target.application;
  return colour === 'green' ? target.green : target.blue;
}

/** The colour serving every user request of `service`; a split (an unfinished canary) is refused. */
export async function liveColour(service: string): Promise<Colour> {
  const state = await read.getTrafficState({ service });
  if (!state.active) {
    throw failure(
      FailureType.PolicyViolation,
      `traffic of ${service} is split (${state.weights.map((w) => `${w.target} ${w.percent}%`).join(', ')}); finish or undo the running canary first`,
    );
  }
  return state.active;
}

/**
 * The services of production that do not serve `expected` (the live colour's application, its running tag,
 * the digest the registry gives that tag), each as a sentence; empty when all of them do.
 */
export async function servicesNotServing(services: ReleaseService[], expected: string): Promise<string[]> {
  const problems: string[] = [];
  for (const service of services) {
    if (!service.production) continue;
    const target = service.production.target;
    const colour =
      'application' in target
        ? null
        : ((await read.getTrafficState({ service: service.name })).active ?? null);
    const app = await read.getApplicationStatus({ applicationUuid: applicationOf(target, colour) });
    const live = app.imageTag ? (await read.resolveImageDigest({ tag: app.imageTag })).digest : null;
    if (live !== expected)
      problems.push(`${service.name} runs ${live ?? 'no tagged image'}, not ${expected}`);
  }
  return problems;
}

/**
 * Deploys `imageTag` to an application and waits until Coolify reports it finished.
 *
 * When the wait ends any other way (the release was cancelled, the wait timed out or gave up), the Coolify
 * deployment may still be running and could land after the workflow has moved on. An undo for it is then
 * pushed on `saga` before the error goes up: it cancels that deployment and, unless the deployment had
 * already failed on its own (Coolify keeps the old container then), puts the application back on the tag
 * it ran before. A deployment that finished is the caller's to undo.
 */
export async function deployAndWait(
  applicationUuid: string,
  imageTag: string,
  colour: Colour | null,
  saga: Saga,
): Promise<DeployedApplication> {
  const before = await read.getApplicationStatus({ applicationUuid });
  const deployed: DeployedApplication = { applicationUuid, colour, previousImageTag: before.imageTag };
  const queued = await quick.deployApplication({ applicationUuid, imageTag });
  try {
    await job.waitForDeployment({ deploymentUuid: queued.deploymentUuid });
  } catch (err) {
    if (patched(INTERRUPTED_DEPLOY_UNDO)) {
      saga.push(`stop deploying ${imageTag} to ${applicationUuid}`, () =>
        undoInterruptedDeploy(deployed, queued.deploymentUuid),
      );
    }
    throw err;
  }
  return deployed;
}

/** Patch id: interrupted deployments are cancelled and undone (runs before it left them running). */
const INTERRUPTED_DEPLOY_UNDO = 'undo-interrupted-deploy';

async function undoInterruptedDeploy(app: DeployedApplication, deploymentUuid: string): Promise<string> {
  const cancelled = await quick.cancelDeployment({ deploymentUuid });
  const ended = cancelled.alreadyEnded ? `had ended ${cancelled.status}` : 'cancelled';
  if (cancelled.alreadyEnded && cancelled.status !== 'finished')
    return `deployment ${deploymentUuid} ${ended}; ${app.applicationUuid} kept what it ran`;
  await redeployPrevious(app);
  return `deployment ${deploymentUuid} ${ended}; ${app.applicationUuid} ${app.previousImageTag ? `back on ${app.previousImageTag}` : 'ran nothing before'}`;
}

/** Puts an application back on `previousImageTag` (Coolify's previous revision, R1) and waits for it. */
export async function redeployPrevious(app: DeployedApplication): Promise<void> {
  if (!app.previousImageTag) return;
  const queued = await quick.deployPreviousRevision({
    applicationUuid: app.applicationUuid,
    previousImageTag: app.previousImageTag,
  });
  await job.waitForDeployment({ deploymentUuid: queued.deploymentUuid });
}

/** The URL of an application's health check: its first Coolify domain plus the service's path. */
export async function healthUrl(applicationUuid: string, path: string): Promise<string> {
  const status = await read.getApplicationStatus({ applicationUuid });
  const first = (status.fqdn ?? '').split(',')[0]?.trim();
  if (!first) {
    throw failure(
      FailureType.InvalidInput,
      `application ${applicationUuid} has no domain in Coolify, so it cannot be smoke-checked; give it one`,
    );
  }
  return `${first.replace(/\/+$/, '')}${path}`;
}

/** Smoke-checks URLs (M1); any failed check fails with `OperationFailed` listing the problems. */
export async function smokeCheck(what: string, urls: { name: string; url: string }[]): Promise<string> {
  if (urls.length === 0) return 'nothing to check';
  const result = await quick.checkEndpoints({ checks: urls.map((u) => ({ name: u.name, url: u.url })) });
  if (!result.passed) {
    const problems = result.results
      .filter((r) => !r.ok)
      .map((r) => `${r.name}: ${r.problem ?? `status ${r.status}`}`)
      .join('; ');
    throw failure(FailureType.OperationFailed, `smoke check of ${what} failed: ${problems}`);
  }
  return `${result.results.length} checks passed`;
}

/**
 * One health sample of a service (M4 error rate, M2 error lines) over the last `sampleIntervalMs`. Never
 * throws for a failing backend: that is a `backend-error` sample, which the caller judges inconclusive.
 */
export async function sampleService(input: {
  service: string;
  environment: string;
  minute: number;
  monitoring: MonitoringSettings;
  labels?: Record<string, string>;
}): Promise<BakeSample> {
  const { monitoring, service } = input;
  const until = new Date();
  const since = new Date(until.getTime() - monitoring.sampleIntervalMs);
  const base = {
    minute: input.minute,
    at: until.toISOString(),
    service,
    threshold: monitoring.maxErrorRate,
    minRequests: monitoring.minRequestsPerSample,
    maxErrorLines: monitoring.maxErrorLines,
  };
  const selector = logSelectorOf(
    fillQueryTemplate(monitoring.errorLogQuery, {
      environment: input.environment,
      service,
      color: input.labels?.['color'] ?? '',
      window: `${Math.max(1, Math.round(monitoring.sampleIntervalMs / 1000))}s`,
    }),
  );
  const [rate, lines] = await Promise.allSettled([
    read.sampleErrorRate({
      service,
      windowSeconds: Math.max(1, Math.round(monitoring.sampleIntervalMs / 1000)),
      minRequests: monitoring.minRequestsPerSample,
      time: until.toISOString(),
      ...(input.labels ? { labels: input.labels } : {}),
    }),
    read.countErrors({ selector, since: since.toISOString(), until: until.toISOString() }),
  ]);
  const errorLines = lines.status === 'fulfilled' ? lines.value.errors : null;
  if (rate.status === 'rejected') {
    return {
      ...base,
      errorRateQuery: '',
      errorRate: null,
      requests: null,
      errorLines,
      decision: 'backend-error',
      note: `Prometheus: ${describeError(rate.reason)}`,
    };
  }
  const r = rate.value;
  const sample = {
    ...base,
    errorRateQuery: r.query,
    errorRate: r.errorRate,
    requests: r.requests,
    errorLines,
  };
  if (errorLines !== null && errorLines > monitoring.maxErrorLines) {
    return {
      ...sample,
      decision: 'breach',
      note: `${errorLines} error lines in Loki (limit ${monitoring.maxErrorLines})`,
    };
  }
  if (r.decision === 'insufficient-data') {
    return {
      ...sample,
      decision: 'insufficient-data',
      note: `${r.requests} requests, fewer than ${monitoring.minRequestsPerSample}`,
    };
  }
  if (r.errorRate !== null && r.errorRate > monitoring.maxErrorRate) {
    return {
      ...sample,
      decision: 'breach',
      note: `error rate ${(r.errorRate * 100).toFixed(2)}% above ${(monitoring.maxErrorRate * 100).toFixed(2)}%`,
    };
  }
  return lines.status === 'rejected'
    ? { ...sample, decision: 'healthy', note: `Loki unavailable: ${describeError(lines.reason)}` }
    : { ...sample, decision: 'healthy' };
}

/** Sleeps `ms` of workflow time (a durable timer). */
export const hold = (ms: number): Promise<void> => (ms > 0 ? sleep(ms) : Promise.resolve());

/**
 * Compensations of completed steps (saga). `push` after a forward step succeeds; `compensate` runs them in
 * reverse inside a non-cancellable scope, records each outcome, and never throws: a compensation that fails
 * is recorded and the others still run.
 */
export class Saga {
  private readonly undo: { name: string; run: () => Promise<string | void> }[] = [];

  push(name: string, run: () => Promise<string | void>): void {
    this.undo.push({ name, run });
  }

  get size(): number {
    return this.undo.length;
  }

  async compensate(record: (r: CompensationRecord) => void): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      while (this.undo.length > 0) {
        const { name, run } = this.undo.pop()!;
        try {
          const detail = await run();
          record({ name, status: 'completed', at: new Date().toISOString(), ...(detail ? { detail } : {}) });
        } catch (err) {
          log.error('compensation failed', { name, error: describeError(err) });
          record({ name, status: 'failed', at: new Date().toISOString(), detail: describeError(err) });
        }
      }
    });
  }
}

/** A small step recorder for the child workflows, whose steps the release copies into its status. */
export class StepLog {
  readonly steps: ReleaseStep[] = [];

  async run<T>(name: string, fn: () => Promise<T>, describe?: (r: T) => string | undefined): Promise<T> {
    const step: ReleaseStep = { name, status: 'running', startedAt: new Date().toISOString(), endedAt: null };
    this.steps.push(step);
    try {
      const result = await fn();
      step.status = 'completed';
      const detail = describe?.(result);
      if (detail) step.detail = detail;
      return result;
    } catch (err) {
      step.status = 'failed';
      step.detail = describeError(err);
      throw err;
    } finally {
      step.endedAt = new Date().toISOString();
    }
  }
}

/**
 * The end of a strategy workflow that failed or was cancelled: undoes its completed steps, then fails with
 * `OperationFailed` carrying its steps and compensations as details (the release copies them into its
 * status). A cancellation is rethrown as it is, so the child ends cancelled; since a cancelled workflow
 * carries no details, the steps and compensations go to the parent release by signal first.
 */
export async function undoAndFail(err: unknown, steps: StepLog, saga: Saga, what: string): Promise<never> {
  const compensations: CompensationRecord[] = [];
  await saga.compensate((r) => compensations.push(r));
  if (isCancellation(err)) {
    await reportUndone(steps, compensations);
    throw err;
  }
  throw failure(FailureType.OperationFailed, `${what} failed: ${describeError(err)}`, {
    details: { steps: steps.steps, compensations },
  });
}

/** Patch id: a cancelled strategy child reports what it undid to its release (runs before it did not). */
const REPORT_UNDONE = 'report-undone-to-release';

async function reportUndone(steps: StepLog, compensations: CompensationRecord[]): Promise<void> {
  const { parent, workflowId } = workflowInfo();
  if (!parent || !patched(REPORT_UNDONE)) return;
  const report: StrategyUndone = { workflowId, steps: steps.steps, compensations };
  try {
    await CancellationScope.nonCancellable(() =>
      getExternalWorkflowHandle(parent.workflowId, parent.runId).signal(strategyUndoneSignal, report),
    );
  } catch (err) {
    // The release is gone (terminated): the child's own history still holds the record.
    log.warn('could not report the undone steps to the release', { error: describeError(err) });
  }
}
