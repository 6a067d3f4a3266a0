/**
 * `releaseWorkflow`: one durable workflow carries a version from a commit to production (L1-L6), waits as
 * long as humans need, survives worker crashes, and undoes what it did when it is cancelled, fails, or the
 * new version misbehaves after the switch (M4).
 *
 * The route (each phase in `status`, the `ReleasePhase` search attribute and the audit log):
 *   validating -> queued (environment lock) -> building (CI) -> image-check (bound to the digest from here)
 *   -> staging-deploy (rolling, S2) -> staging-smoke (M1) -> qa-gate (L4) -> rc-tag (vX.Y.Z-rc.N)
 *   -> awaiting-approval -> freeze-wait -> rollback-readiness (previous digest, database snapshot,
 *   Proxmox snapshot, B3) -> migrations (L5) -> production-deploy (strategy child workflow)
 *   -> baking (M4/M2) -> finalizing (vX.Y.Z, changelog, Grafana, Telegram) -> released.
 * The hotfix route (L3) skips the QA gate and the release candidate tag and needs the hotfix approval
 * count; everything else, approval and audit included, is the same. Freeze windows that allow hotfixes let
 * it through.
 *
 * Signals (`approve`, `reject`, `cancel`, `qaResult`) are validated; a malformed one, or one from someone
 * not allowed, or one that does not fit the phase, is refused and recorded, and the release carries on.
 * Production traffic never moves before the required approvals are in.
 */
import {
  ActivityFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ApplicationFailure,
  condition,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { z } from 'zod';
import type { PlatformActivities } from '../activities';
import type { ReleaseActivities } from '../activities/release/release-activities';
import type { SnapshotRecord } from '../activities/postgres/postgres-schemas';
import type { QaSummary } from '../activities/qa/qa-schemas';
import { changesFromCommits, docsSnapshotPath, releaseDate, renderChangelogEntry } from '../domain/changelog';
import { activeFreeze } from '../domain/freeze-window';
import type { ReleaseSettings } from '../domain/release-settings';
import { FailureType, failure } from '../errors';
import type { DeployInput, DeployResult, RollbackPlan, ServiceRollout } from '../schemas/deployment';
import {
  ApproveSignal,
  CancelSignal,
  QaResultSignal,
  RejectSignal,
  ReleaseInput,
  StrategyUndone,
  type BakeSample,
  type CompensationRecord,
  type ParsedReleaseInput,
  type ReleaseChanges,
  type ReleaseResult,
  type ReleaseStatus,
} from '../schemas/release';
import { DATABASE_JOB, EXTERNAL_JOB, QUICK_CALL, READ_CALL } from './activity-options';
import { blueGreenDeployWorkflow } from './blue-green-workflow';
import { canaryDeployWorkflow } from './canary-workflow';
import {
  approveSignal,
  cancelSignal,
  qaResultSignal,
  rejectSignal,
  strategyUndoneSignal,
  SEARCH_ATTRIBUTES,
  statusQuery,
} from './definitions';
import {
  Saga,
  applicationOf,
  hold,
  redeployPrevious,
  sampleService,
  servicesNotServing,
} from './deploy-support';
import { acquireEnvironmentLock, type EnvironmentLockHandle } from './environment-lock';
import { ReleaseJournal, describeError } from './release-journal';
import { rollingDeployWorkflow } from './rolling-workflow';
import { shadowDeployWorkflow } from './shadow-workflow';

const quick = proxyActivities<PlatformActivities & ReleaseActivities>(QUICK_CALL);
const read = proxyActivities<PlatformActivities>(READ_CALL);
const job = proxyActivities<PlatformActivities>(EXTERNAL_JOB);
const database = proxyActivities<PlatformActivities>(DATABASE_JOB);

/** Patch id: production is checked and announced after a strategy child was stopped half-way too. */
const CHECK_AFTER_STOPPED_DEPLOY = 'check-after-stopped-deploy';
/** Patch id: the release enters `freeze-wait` only when a freeze window is in force. */
const FREEZE_PHASE_ONLY_IN_WINDOW = 'freeze-phase-only-in-window';
/** Patch id: approvals are taken from the moment the phase is awaiting-approval. */
const ACCEPT_APPROVALS_ON_ENTRY = 'accept-approvals-on-entry';
/** Patch id: rollback readiness starts the database snapshot before its other checks. */
const SNAPSHOT_FIRST = 'snapshot-first';

const STRATEGY_WORKFLOWS = {
  'blue-green': blueGreenDeployWorkflow,
  canary: canaryDeployWorkflow,
  shadow: shadowDeployWorkflow,
  rolling: rollingDeployWorkflow,
} as const;

/** How a wait for humans ended. */
type Decision = { kind: 'approved' } | { kind: 'rejected'; by: string; reason: string };

/** Raised inside the pipeline to end it on a human decision rather than a failure. */
class ReleaseStopped extends Error {
  constructor(
    readonly phase: 'rejected' | 'rolled-back',
    message: string,
  ) {
    super(message);
  }
}

export async function releaseWorkflow(rawInput: ReleaseInput): Promise<ReleaseResult> {
  const parsed = ReleaseInput.safeParse(rawInput);
  if (!parsed.success) {
    throw failure(FailureType.InvalidInput, `release input is invalid: ${z.prettifyError(parsed.error)}`, {
      details: { issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  return new Release(parsed.data).run();
}

class Release {
  private readonly journal: ReleaseJournal;
  private readonly status: ReleaseStatus;
  private settings: ReleaseSettings | null = null;
  private readonly pipeline = new CancellationScope();
  private cancelledBy: { by: string; reason: string } | null = null;
  private qa: QaResultSignal | null = null;
  private decision: Decision | null = null;
  private acceptingApprovals = false;
  private freezeOverrides: string[] = [];
  private bakeDecision: Decision | null = null;
  private readonly stagingSaga = new Saga();
  private readonly productionSaga = new Saga();
  private snapshot: SnapshotRecord | null = null;
  private migrationsApplied: string[] = [];
  private rollouts: ServiceRollout[] = [];
  private previousImageTag: string | null = null;
  private pendingMigrations: string[] = [];
  /** The strategy child running now, the only one whose `strategyUndone` report is accepted. */
  private runningChild: { workflowId: string; stage: DeployInput['stage'] } | null = null;
  private productionDeployStarted = false;

  constructor(private readonly input: ParsedReleaseInput) {
    this.journal = new ReleaseJournal(
      {
        version: input.version,
        commit: input.commit,
        requestedBy: input.requestedBy,
        strategy: input.strategy ?? null,
        hotfix: input.hotfix,
      },
      `release v${input.version}`,
    );
    this.status = this.journal.status;
    setHandler(statusQuery, () => this.status);
    setHandler(approveSignal, (payload) => this.onApprove(payload));
    setHandler(rejectSignal, (payload) => this.onReject(payload));
    setHandler(cancelSignal, (payload) => this.onCancel(payload));
    setHandler(qaResultSignal, (payload) => this.onQaResult(payload));
    setHandler(strategyUndoneSignal, (payload) => this.onStrategyUndone(payload));
  }

  // ---------------------------------------------------------------------------------------------------
  // Signals

  private actorOf(payload: unknown, field: string): string | null {
    if (payload && typeof payload === 'object' && field in payload) {
      const value = (payload as Record<string, unknown>)[field];
      if (typeof value === 'string') return value.slice(0, 64);
    }
    return null;
  }

  private parse<T>(signal: string, schema: z.ZodType<T>, payload: unknown, actorField: string): T | null {
    const result = schema.safeParse(payload);
    if (!result.success) {
      this.journal.refuse(
        signal,
        this.actorOf(payload, actorField),
        `malformed payload: ${z.prettifyError(result.error)}`,
      );
      return null;
    }
    return result.data;
  }

  /** Why `approver` may not decide on this release, or null when they may. */
  private notAllowed(approver: string): string | null {
    const policy = this.settings?.approval;
    if (!policy) return 'the release has not loaded its approval policy yet';
    if (!policy.approvers.includes(approver))
      return `${approver} is not an allowed approver (${policy.approvers.join(', ')})`;
    if (policy.separationOfDuties && approver === this.input.requestedBy) {
      return `${approver} requested this release and may not approve it (separation of duties)`;
    }
    return null;
  }

  private onApprove(payload: unknown): void {
    const signal = this.parse('approve', ApproveSignal, payload, 'approver');
    if (!signal) return;
    const refuse = (reason: string) => this.journal.refuse('approve', signal.approver, reason);
    if (this.status.terminal) return refuse(`the release has ended (${this.status.phase})`);
    const denied = this.notAllowed(signal.approver);
    if (denied) return refuse(denied);
    if (signal.digest && signal.digest !== this.status.digest) {
      return refuse(
        `approval names digest ${signal.digest}, but the release is bound to ${this.status.digest ?? 'no digest yet'}`,
      );
    }
    const at = this.journal.now();
    const base = {
      approver: signal.approver,
      at,
      ...(signal.comment ? { comment: signal.comment } : {}),
      ...(this.status.digest ? { digest: this.status.digest } : {}),
    };
    if (this.status.phase === 'freeze-wait') {
      if (!signal.freezeOverride)
        return refuse(
          'the release waits for a freeze window to end; an override needs freezeOverride: true from two approvers',
        );
      if (this.freezeOverrides.includes(signal.approver))
        return refuse(`${signal.approver} has already overridden the freeze`);
      this.freezeOverrides.push(signal.approver);
      this.journal.approval({ ...base, decision: 'freeze-override' });
      return;
    }
    if (this.status.phase === 'bake-inconclusive') {
      if (this.bakeDecision) return refuse('the bake decision has been taken');
      this.bakeDecision = { kind: 'approved' };
      this.journal.approval({ ...base, decision: 'bake-continue' });
      return;
    }
    if (!this.acceptingApprovals)
      return refuse(`the release is not waiting for approval (phase ${this.status.phase})`);
    if (this.status.approvals.some((a) => a.decision === 'approved' && a.approver === signal.approver)) {
      return refuse(
        `${signal.approver} has already approved; ${this.settings?.approval.requiredApprovals ?? 1} distinct approvers are needed`,
      );
    }
    this.journal.approval({ ...base, decision: 'approved' });
  }

  /** A cancelled strategy child's report of what it undid: its steps and compensations join the status. */
  private onStrategyUndone(payload: unknown): void {
    const report = this.parse('strategyUndone', StrategyUndone, payload, 'workflowId');
    if (!report) return;
    const child = this.runningChild;
    if (child?.workflowId !== report.workflowId) {
      this.journal.refuse(
        'strategyUndone',
        report.workflowId,
        `${report.workflowId} is not the running strategy`,
      );
      return;
    }
    this.status.steps.push(...report.steps.map((st) => ({ ...st, name: `${child.stage}: ${st.name}` })));
    for (const c of report.compensations) this.journal.compensation(c);
  }

  private onReject(payload: unknown): void {
    const signal = this.parse('reject', RejectSignal, payload, 'approver');
    if (!signal) return;
    const refuse = (reason: string) => this.journal.refuse('reject', signal.approver, reason);
    if (this.status.terminal) return refuse(`the release has ended (${this.status.phase})`);
    const denied = this.notAllowed(signal.approver);
    if (denied) return refuse(denied);
    const record = {
      approver: signal.approver,
      decision: 'rejected' as const,
      at: this.journal.now(),
      comment: signal.reason,
    };
    if (this.status.phase === 'bake-inconclusive') {
      if (this.bakeDecision) return refuse('the bake decision has been taken');
      this.bakeDecision = { kind: 'rejected', by: signal.approver, reason: signal.reason };
      this.journal.approval(record);
      return;
    }
    if (!this.acceptingApprovals && this.status.phase !== 'freeze-wait') {
      return refuse(
        `the release is not waiting for a decision (phase ${this.status.phase}); cancel it instead`,
      );
    }
    this.decision = { kind: 'rejected', by: signal.approver, reason: signal.reason };
    this.journal.approval(record);
  }

  private onCancel(payload: unknown): void {
    const signal = this.parse('cancel', CancelSignal, payload, 'requestedBy');
    if (!signal) return;
    const refuse = (reason: string) => this.journal.refuse('cancel', signal.requestedBy, reason);
    if (this.status.terminal) return refuse(`the release has ended (${this.status.phase})`);
    if (this.cancelledBy) return refuse(`already cancelled by ${this.cancelledBy.by}`);
    const approvers = this.settings?.approval.approvers ?? [];
    if (signal.requestedBy !== this.input.requestedBy && !approvers.includes(signal.requestedBy)) {
      return refuse(
        `${signal.requestedBy} may not cancel: only the requester (${this.input.requestedBy}) or an approver may`,
      );
    }
    if (this.status.phase === 'finalizing')
      return refuse('the release is live and finishing; start a rollback instead');
    this.cancelledBy = { by: signal.requestedBy, reason: signal.reason };
    this.journal.audit({
      step: this.status.phase,
      action: 'cancel-requested',
      actor: signal.requestedBy,
      decision: 'cancel',
      details: { reason: signal.reason },
    });
    this.pipeline.cancel();
  }

  private onQaResult(payload: unknown): void {
    const signal = this.parse('qaResult', QaResultSignal, payload, 'reporter');
    if (!signal) return;
    const refuse = (reason: string) => this.journal.refuse('qaResult', signal.reporter, reason);
    if (this.status.terminal) return refuse(`the release has ended (${this.status.phase})`);
    if (this.input.hotfix) return refuse('the hotfix route has no QA gate');
    if (
      this.qa?.passed === true &&
      this.status.phase !== 'qa-gate' &&
      this.status.steps.some((s) => s.name === 'qa-gate' && s.status === 'completed')
    ) {
      return refuse('the QA gate has already passed');
    }
    this.recordQa(signal, 'qa-result', {
      reportUrl: signal.reportUrl ?? null,
      summary: signal.summary ?? null,
    });
  }

  /** The QA gate's answer, from the signal or the fetched report, kept and audited. */
  private recordQa(result: QaResultSignal, action: string, details: Record<string, unknown>): void {
    this.qa = result;
    this.journal.audit({
      step: 'qa-gate',
      action,
      actor: result.reporter,
      decision: result.passed ? 'passed' : 'failed',
      details,
    });
  }

  // ---------------------------------------------------------------------------------------------------
  // The route

  async run(): Promise<ReleaseResult> {
    const { workflowId } = workflowInfo();
    upsertSearchAttributes({
      [SEARCH_ATTRIBUTES.version]: [this.input.version],
      [SEARCH_ATTRIBUTES.phase]: ['validating'],
    });
    this.journal.audit({
      step: 'validating',
      action: 'release-requested',
      details: {
        commit: this.input.commit,
        strategy: this.input.strategy ?? null,
        hotfix: this.input.hotfix,
        workflowId,
      },
    });
    let lock: EnvironmentLockHandle | null = null;
    let artifacts: Pick<ReleaseResult, 'tag' | 'changelogEntry' | 'changelogPath' | 'docsSnapshotPath'> = {
      tag: null,
      changelogEntry: null,
      changelogPath: null,
      docsSnapshotPath: null,
    };
    try {
      artifacts = await this.pipeline.run(async () => {
        const settings = await this.journal.step('load settings', () =>
          quick.loadReleaseSettings({
            hotfix: this.input.hotfix,
            ...(this.input.strategy ? { strategy: this.input.strategy } : {}),
          }),
        );
        this.settings = settings;
        this.status.strategy = settings.strategy.type;
        this.status.requiredApprovals = settings.approval.required ? settings.approval.requiredApprovals : 0;

        this.journal.phase('queued');
        lock = await this.journal.step(`lock ${settings.productionEnvironment}`, () =>
          acquireEnvironmentLock(settings.productionEnvironment, (position) => {
            this.status.queuePosition = position;
          }),
        );
        this.status.queuePosition = null;
        return this.route(settings);
      });
      this.journal.phase('released', { tag: artifacts.tag });
    } catch (err) {
      await this.end(err);
    } finally {
      const held = lock as EnvironmentLockHandle | null;
      if (held) await CancellationScope.nonCancellable(() => held.release());
      await this.journal.flush();
    }
    return { status: this.status, ...artifacts, rollbackPlan: this.rollbackPlan() };
  }

  private rollbackPlan(): RollbackPlan | null {
    if (this.rollouts.length === 0 || !this.status.digest) return null;
    return {
      version: this.input.version,
      digest: this.status.digest,
      previousDigest: this.status.previousDigest,
      previousImageTag: this.previousImageTag,
      snapshot: this.snapshot,
      migrationsApplied: this.migrationsApplied,
      services: this.rollouts,
    };
  }

  /** How the release ends when the route did not complete: compensations, then the terminal phase. */
  private async end(err: unknown): Promise<void> {
    const record = (r: CompensationRecord) => this.journal.compensation(r);
    if (err instanceof ReleaseStopped) {
      this.status.outcome = err.message;
      if (err.phase === 'rolled-back') {
        this.journal.phase('compensating');
        await this.productionSaga.compensate(record);
        await this.afterRollback(err.message);
      }
      this.journal.phase(err.phase, { outcome: err.message });
      return;
    }
    const cancelled = isCancellation(err);
    this.status.outcome = cancelled
      ? `cancelled by ${this.cancelledBy?.by ?? 'a workflow cancellation'}${this.cancelledBy ? `: ${this.cancelledBy.reason}` : ''} during ${this.status.phase}`
      : `failed during ${this.status.phase}: ${describeError(err)}`;
    this.copyChildDetails(err);
    // A strategy child stopped half-way undid its own switches; production still gets the checks below.
    const touchedProduction =
      this.productionSaga.size > 0 || (this.productionDeployStarted && patched(CHECK_AFTER_STOPPED_DEPLOY));
    if (touchedProduction || this.stagingSaga.size > 0) {
      this.journal.phase('compensating');
      await this.productionSaga.compensate(record);
      await this.stagingSaga.compensate(record);
      if (touchedProduction) await this.afterRollback(this.status.outcome);
    }
    await this.journal.notify(
      `Release v${this.input.version} ${cancelled ? 'cancelled' : 'failed'}: ${this.status.outcome}`,
    );
    this.journal.phase(cancelled ? 'cancelled' : 'failed', { outcome: this.status.outcome });
  }

  /** A failed strategy child reports its steps and compensations as details; copy them into the status. */
  private copyChildDetails(err: unknown): void {
    if (!(err instanceof ChildWorkflowFailure) || !(err.cause instanceof ApplicationFailure)) return;
    const details = err.cause.details?.[0] as { steps?: unknown; compensations?: unknown } | undefined;
    if (Array.isArray(details?.steps)) this.status.steps.push(...(details.steps as ReleaseStatus['steps']));
    if (Array.isArray(details?.compensations)) {
      for (const c of details.compensations as CompensationRecord[]) this.journal.compensation(c);
    }
  }

  /** After production was put back: check the exact previous digest is live, purge the CDN, alert (R1-R4). */
  private async afterRollback(reason: string): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      await this.verifyPreviousDigest();
      try {
        await quick.purgeCache({ everything: true });
        this.journal.compensation({ name: 'purge CDN cache', status: 'completed', at: this.journal.now() });
      } catch (err) {
        this.journal.compensation({
          name: 'purge CDN cache',
          status: 'failed',
          at: this.journal.now(),
          detail: describeError(err),
        });
      }
      await this.journal.notify(
        `ROLLBACK of v${this.input.version} in ${this.settings?.productionEnvironment ?? 'production'} to ${this.status.previousDigest ?? 'the previous version'}: ${reason}`,
      );
    });
  }

  private async verifyPreviousDigest(): Promise<void> {
    const expected = this.status.previousDigest;
    if (!expected || !this.settings) return;
    let problems: string[];
    try {
      problems = await servicesNotServing(this.settings.services, expected);
    } catch (err) {
      problems = [describeError(err)];
    }
    this.journal.compensation({
      name: 'verify previous digest is live',
      status: problems.length === 0 ? 'completed' : 'failed',
      at: this.journal.now(),
      detail: problems.length === 0 ? `every service runs ${expected}` : problems.join('; '),
    });
  }

  private async route(settings: ReleaseSettings) {
    const { version, commit, hotfix } = this.input;
    const journal = this.journal;
    const imageTag = version;
    const branch = this.input.branch ?? settings.productionBranch;

    journal.phase('building');
    await journal.step(
      'ci build and test',
      async () => {
        const run = await quick.triggerBuild({ ref: branch, commit, version: `v${version}` });
        return job.waitForBuild({ runId: run.runId });
      },
      (r) => `run ${r.runId} ${r.conclusion} (${r.runUrl})`,
    );

    journal.phase('image-check');
    const image = await journal.step(
      'resolve image digest',
      () => read.resolveImageDigest({ tag: imageTag }),
      (r) => r.reference,
    );
    this.status.digest = image.digest;
    await this.identifyPrevious(settings);
    journal.audit({
      step: 'image-check',
      action: 'bound-to-digest',
      decision: image.digest,
      details: { reference: image.reference },
    });

    if (settings.stagingEnvironment && settings.stagingStrategy) {
      journal.phase('staging-deploy');
      const staged = await this.deploy(
        'staging',
        settings.stagingEnvironment,
        settings.stagingStrategy,
        settings,
        image.digest,
      );
      for (const rollout of staged.services) {
        for (const app of rollout.inPlace) {
          this.stagingSaga.push(
            `redeploy staging ${rollout.service} on ${app.previousImageTag ?? 'nothing'}`,
            async () => {
              await redeployPrevious(app);
              return app.previousImageTag
                ? `${app.applicationUuid} back on ${app.previousImageTag}`
                : 'nothing ran before';
            },
          );
        }
      }

      journal.phase('staging-smoke');
      await journal.step(
        'ci smoke test on staging',
        async () => {
          const run = await quick.triggerSmokeTest({ ref: branch, commit, version: `v${version}` });
          return job.waitForSmokeTest({ runId: run.runId });
        },
        (r) => `run ${r.runId} ${r.conclusion} (${r.runUrl})`,
      );
    } else {
      journal.note('staging', 'skipped', 'no staging environment in release.promotion');
    }

    if (hotfix) {
      journal.note('qa-gate', 'skipped', 'hotfix route (L3)');
      journal.note('rc-tag', 'skipped', 'hotfix route (L3)');
    } else {
      journal.phase('qa-gate');
      await journal.flush();
      const qa = await journal.step(
        'qa-gate',
        async () => {
          if (settings.qaReport) await this.watchQaReport(settings.qaReport);
          await condition(() => this.qa !== null);
          const result = this.qa!;
          if (!result.passed) {
            throw failure(
              FailureType.OperationFailed,
              `QA reported a failure (${result.reporter}${result.reportUrl ? `, ${result.reportUrl}` : ''}${result.summary ? `: ${result.summary}` : ''})`,
            );
          }
          return result;
        },
        (r) =>
          `passed, reported by ${r.reporter}${r.reportUrl ? ` (${r.reportUrl})` : ''}${r.summary ? `: ${r.summary}` : ''}`,
      );
      journal.phase('rc-tag');
      this.status.rcTag = await journal.step(
        'create release candidate tag',
        () => this.createRcTag(qa.reporter),
        (t) => t,
      );
    }

    await this.awaitApproval(settings);
    await this.awaitFreeze(settings);

    journal.phase('rollback-readiness');
    await this.prepareRollback(settings, imageTag, image.digest);

    journal.phase('migrations');
    await this.migrate(settings);

    journal.phase('production-deploy');
    const deployed = await this.deploy(
      'production',
      settings.productionEnvironment,
      settings.strategy,
      settings,
      image.digest,
    );
    this.rollouts = deployed.services;
    for (const rollout of deployed.services) {
      if (rollout.previousTraffic) {
        const state = rollout.previousTraffic;
        this.productionSaga.push(
          `switch ${rollout.service} back to ${rollout.liveBefore ?? 'the previous state'}`,
          async () => {
            await quick.restoreTrafficState({ service: rollout.service, state });
          },
        );
      }
      for (const app of rollout.inPlace) {
        this.productionSaga.push(
          `redeploy ${rollout.service} on ${app.previousImageTag ?? 'nothing'}`,
          async () => {
            await redeployPrevious(app);
            return app.previousImageTag
              ? `${app.applicationUuid} back on ${app.previousImageTag}`
              : 'nothing ran before';
          },
        );
      }
    }
    this.status.bakeSamples.push(...deployed.samples);
    for (const sample of deployed.samples) {
      journal.audit({
        step: 'production-deploy',
        action: 'sample',
        decision: sample.decision,
        details: { ...sample },
      });
    }

    journal.phase('baking');
    await this.bake(settings);

    journal.phase('finalizing');
    return this.finalize(settings);
  }

  private async deploy(
    stage: DeployInput['stage'],
    environment: string,
    strategy: ReleaseSettings['strategy'],
    settings: ReleaseSettings,
    digest: string,
  ): Promise<DeployResult> {
    const input: DeployInput = {
      stage,
      environment,
      version: this.input.version,
      imageTag: this.input.version,
      digest,
      services: settings.services,
      strategy,
      monitoring: settings.monitoring,
      requestedBy: this.input.requestedBy,
    };
    const childId = `${workflowInfo().workflowId}/${stage}-${strategy.type}`;
    if (stage === 'production') this.productionDeployStarted = true;
    this.runningChild = { workflowId: childId, stage };
    const result = await this.journal.step(
      `${stage} deploy (${strategy.type})`,
      () =>
        executeChild(STRATEGY_WORKFLOWS[strategy.type], {
          args: [input],
          workflowId: childId,
        }).finally(() => {
          this.runningChild = null;
        }),
      (r) =>
        r.services.map((s) => `${s.service}: ${s.liveBefore ?? '-'} -> ${s.liveAfter ?? '-'}`).join(', '),
    );
    this.status.steps.push(...result.steps.map((s) => ({ ...s, name: `${stage}: ${s.name}` })));
    return result;
  }

  /**
   * The QA gate's fetched report (L4): looks for the configured report every `pollEveryMs` until it is
   * there or a `qaResult` signal came first, and turns its summary into the QA result. A report that is not
   * there yet is waited for; a malformed one fails the gate with the reader's message.
   */
  private async watchQaReport(report: NonNullable<ReleaseSettings['qaReport']>): Promise<void> {
    const path = report.pathTemplate.replaceAll('${version}', this.input.version);
    while (this.qa === null) {
      let summary: QaSummary;
      try {
        summary = await read.summarizeQaReport({ path, format: report.format });
      } catch (err) {
        if (!(err instanceof ActivityFailure && err.cause instanceof ApplicationFailure)) throw err;
        if (err.cause.type !== FailureType.NotFound) throw err;
        await condition(() => this.qa !== null, report.pollEveryMs);
        continue;
      }
      if (this.qa !== null) return; // a signal arrived while the report was read: it decides
      const counts = `${summary.passed}/${summary.total} passed, ${summary.failed} failed, ${summary.skipped} skipped${summary.flaky ? `, ${summary.flaky} flaky` : ''}`;
      const failures = summary.failures.map((f) => `${f.title}: ${f.error.split('\n')[0]}`).slice(0, 5);
      const result: QaResultSignal = {
        passed: summary.total > 0 && summary.failed === 0,
        reporter: `${report.format} report`,
        summary: (
          `${path}: ${summary.total === 0 ? 'no tests ran' : counts}` +
          (failures.length ? `; ${failures.join('; ')}` : '')
        ).slice(0, 2000),
      };
      this.recordQa(result, 'qa-report', { path, ...summary });
    }
  }

  private async createRcTag(reporter: string): Promise<string> {
    const { version, commit } = this.input;
    for (let n = 1; n <= 50; n++) {
      const name = `v${version}-rc.${n}`;
      try {
        await quick.createTag({
          name,
          commit,
          message: `Release candidate ${name} (QA passed, reported by ${reporter})`,
        });
        return name;
      } catch (err) {
        // Taken by another commit (an earlier candidate of this version): try the next number.
        if (err instanceof Error && describeError(err).startsWith(FailureType.UpstreamRejected)) continue;
        throw err;
      }
    }
    throw failure(
      FailureType.PolicyViolation,
      `v${version} has 50 release candidates already; choose a new version`,
    );
  }

  private async awaitApproval(settings: ReleaseSettings): Promise<void> {
    const journal = this.journal;
    const policy = settings.approval;
    journal.phase('awaiting-approval');
    if (!policy.required) {
      journal.note(
        'approval',
        'skipped',
        `${settings.productionEnvironment} needs no approval (approval.environments)`,
      );
      return;
    }
    // The status says awaiting-approval from here, so an approval sent on seeing it must be taken, even
    // while the audit rows are still being written (runs before this patch refused it as out of phase).
    if (patched(ACCEPT_APPROVALS_ON_ENTRY)) this.acceptingApprovals = true;
    await journal.flush();
    await journal.step(
      'approval',
      async () => {
        this.acceptingApprovals = true;
        const approved = () => this.status.approvals.filter((a) => a.decision === 'approved').length;
        const enough = () => approved() >= policy.requiredApprovals || this.decision !== null;
        const startedAt = Date.now();
        await journal.notify(
          `Release v${this.input.version}${this.input.hotfix ? ' (hotfix)' : ''} of ${this.input.commit.slice(0, 12)} (${this.status.digest}) awaits ${policy.requiredApprovals} approval(s) from ${policy.approvers.join(', ')}; requested by ${this.input.requestedBy}.`,
        );
        let reminders = 0;
        while (!(await condition(enough, policy.reminderIntervalMs))) {
          reminders++;
          const waited = Date.now() - startedAt;
          const overdue = waited >= policy.overdueAfterMs ? ' OVERDUE' : '';
          await journal.notify(
            `Reminder${overdue}: release v${this.input.version} has waited ${Math.round(waited / 3_600_000)}h for approval (${approved()}/${policy.requiredApprovals}).`,
          );
          journal.audit({
            step: 'awaiting-approval',
            action: 'reminder',
            details: { reminders, waitedMs: waited, overdue: overdue !== '' },
          });
        }
        this.acceptingApprovals = false;
        const decision = this.decision;
        if (decision?.kind === 'rejected')
          throw new ReleaseStopped('rejected', `rejected by ${decision.by}: ${decision.reason}`);
        return {
          approvers: this.status.approvals.filter((a) => a.decision === 'approved').map((a) => a.approver),
          reminders,
        };
      },
      (r) => `approved by ${r.approvers.join(', ')} after ${r.reminders} reminder(s)`,
    );
  }

  private async awaitFreeze(settings: ReleaseSettings): Promise<void> {
    const journal = this.journal;
    // Runs started before this patch pass through freeze-wait even when no window is in force.
    if (!patched(FREEZE_PHASE_ONLY_IN_WINDOW)) journal.phase('freeze-wait');
    for (;;) {
      const freeze = activeFreeze(settings.freezeWindows, {
        environment: settings.productionEnvironment,
        atMs: Date.now(),
        hotfix: this.input.hotfix,
        defaultTimeZone: settings.organizationTimeZone,
      });
      if (!freeze) break;
      journal.phase('freeze-wait');
      this.status.freeze = { window: freeze.window, until: new Date(freeze.endsAtMs).toISOString() };
      await journal.flush();
      const overridden = await journal.step(
        `freeze window ${freeze.window}`,
        async () => {
          await journal.notify(
            `Release v${this.input.version} is approved but waits for freeze window "${freeze.window}" to end at ${this.status.freeze?.until}${freeze.reason ? ` (${freeze.reason})` : ''}. Two approvers may override with freezeOverride.`,
          );
          const overridden = await condition(
            () => this.freezeOverrides.length >= 2 || this.decision !== null,
            Math.max(1, freeze.endsAtMs - Date.now()),
          );
          const decision = this.decision;
          if (decision?.kind === 'rejected')
            throw new ReleaseStopped(
              'rejected',
              `rejected by ${decision.by} during freeze window ${freeze.window}: ${decision.reason}`,
            );
          return overridden;
        },
        (o) => (o ? `overridden by ${this.freezeOverrides.join(' and ')}` : 'window ended'),
      );
      this.status.freeze = null;
      if (overridden) break;
    }
  }

  /**
   * The version production runs now, found before the approval so that the approver sees what a rollback
   * would return to, and so that little remains to do between the approval and the deploy.
   */
  private async identifyPrevious(settings: ReleaseSettings): Promise<void> {
    const first = settings.services.find((s) => s.production);
    await this.journal.step(
      'identify the version production runs',
      async () => {
        if (!first?.production) return 'no production service';
        const target = first.production.target;
        const colour =
          'application' in target
            ? null
            : ((await read.getTrafficState({ service: first.name })).active ?? 'blue');
        const app = await read.getApplicationStatus({ applicationUuid: applicationOf(target, colour) });
        if (!app.imageTag) return 'production runs no tagged image yet (first release)';
        const previous = await read.resolveImageDigest({ tag: app.imageTag });
        this.previousImageTag = app.imageTag;
        this.status.previousDigest = previous.digest;
        return `${app.imageTag} = ${previous.digest}`;
      },
      (d) => d,
    );
  }

  private async prepareRollback(settings: ReleaseSettings, imageTag: string, digest: string): Promise<void> {
    const journal = this.journal;
    // The checks run side by side. The database snapshot (pg_dump) takes longest and the production deploy
    // waits for it, so it starts first.
    const snapshotFirst = settings.preDeploymentSnapshot && patched(SNAPSHOT_FIRST);
    const snapshotStep = (): Promise<unknown> =>
      settings.preDeploymentSnapshot
        ? journal.step(
            'pre-deployment database snapshot',
            async () => {
              const snapshot = await database.takeSnapshot({});
              this.snapshot = {
                path: snapshot.path,
                sizeBytes: snapshot.sizeBytes,
                takenAt: snapshot.takenAt,
                sha256: snapshot.sha256,
              };
              return snapshot;
            },
            (s) => `${s.path} (${s.sizeBytes} bytes, taken ${s.takenAt})`,
          )
        : Promise.resolve(
            journal.note(
              'pre-deployment database snapshot',
              'skipped',
              'database.preDeploymentSnapshot is off',
            ),
          );
    const snapshotStarted = snapshotFirst ? snapshotStep() : undefined;
    await Promise.all([
      snapshotStarted,
      journal.step('image still bound to the approved digest', async () => {
        const now = await read.resolveImageDigest({ tag: imageTag });
        if (now.digest !== digest) {
          throw failure(
            FailureType.PolicyViolation,
            `tag ${imageTag} now points at ${now.digest}, not the approved ${digest}; release again to approve the new image`,
          );
        }
        return now.digest;
      }),
      journal.step('previous digest still in the registry', async () => {
        const previous = this.status.previousDigest;
        if (!previous) return 'production ran no tagged image (first release)';
        const exists = await read.checkDigestExists({ digest: previous });
        if (!exists.exists) {
          throw failure(
            FailureType.PolicyViolation,
            `the previous image ${exists.reference} is gone from the registry: a rollback would have nothing to go back to`,
          );
        }
        return `${this.previousImageTag ?? '?'} = ${previous}`;
      }),
      journal.step(
        'pending migrations',
        async () => {
          this.pendingMigrations = (await database.applyMigrations({ dryRun: true })).pending;
          return this.pendingMigrations.join(', ') || 'none';
        },
        (d) => d,
      ),
      snapshotFirst ? undefined : snapshotStep(),
      journal.step(
        'deployment snapshot (Proxmox)',
        async () => {
          const snapname = `release-v${this.input.version.replaceAll('.', '_')}`;
          await Promise.all(
            settings.deploymentSnapshotGuests.map(async (vmid) => {
              const task = await quick.snapshotVm({
                vmid,
                snapname,
                description: `aceh-release v${this.input.version} before deployment`,
              });
              if (task.upid) await job.waitForTask({ upid: task.upid });
            }),
          );
          return `${snapname} on guests ${settings.deploymentSnapshotGuests.join(', ')}`;
        },
        (s) => s,
      ),
    ]);
  }

  private async migrate(settings: ReleaseSettings): Promise<void> {
    await this.journal.step(
      'apply migrations',
      async () => {
        if (this.pendingMigrations.length === 0) return 'no pending migration';
        const snapshot = this.snapshot;
        if (snapshot) {
          // Pushed before applying: a migration run that fails half-way has changed the database too.
          this.productionSaga.push('restore database snapshot', async () => {
            const restored = await database.restoreSnapshot({
              snapshot,
              maxAgeMs: settings.rpoMs,
              confirmStale: true,
            });
            return `restored ${restored.path} (age ${Math.round(restored.ageMs / 1000)}s)`;
          });
        }
        const applied = await database.applyMigrations({ dryRun: false });
        this.migrationsApplied = applied.applied;
        return `applied ${applied.applied.join(', ') || 'nothing'}`;
      },
      (d) => d,
    );
  }

  private async bake(settings: ReleaseSettings): Promise<void> {
    const journal = this.journal;
    const { monitoring } = settings;
    const samplesPerService = Math.max(1, Math.ceil(monitoring.bakeTimeMs / monitoring.sampleIntervalMs));
    const services = settings.services.filter((s) => s.production).map((s) => s.name);
    const taken: BakeSample[] = [];
    const breach = await journal.step(
      `bake ${samplesPerService} samples`,
      async () => {
        for (let minute = 1; minute <= samplesPerService; minute++) {
          await hold(monitoring.sampleIntervalMs);
          for (const service of services) {
            const sample = await sampleService({
              service,
              environment: settings.productionEnvironment,
              minute,
              monitoring,
            });
            taken.push(sample);
            this.status.bakeSamples.push(sample);
            journal.audit({
              step: 'baking',
              action: 'sample',
              decision: sample.decision,
              details: { ...sample },
            });
            if (sample.decision === 'breach') return sample;
          }
        }
        return null;
      },
      (b) => (b ? `breach at minute ${b.minute}: ${b.service} ${b.note ?? ''}` : 'no breach'),
    );
    if (breach) {
      throw new ReleaseStopped(
        'rolled-back',
        `automatic rollback at minute ${breach.minute} of the bake: ${breach.service} ${breach.note ?? 'breach'}`,
      );
    }
    const judged = (service: string) =>
      taken.filter((s) => s.service === service && (s.decision === 'healthy' || s.decision === 'breach'))
        .length;
    const unjudged = services.filter((s) => judged(s) * 2 < samplesPerService);
    if (unjudged.length === 0) return;

    journal.phase('bake-inconclusive', { services: unjudged });
    await journal.flush();
    await journal.step('bake decision', async () => {
      await journal.notify(
        `Release v${this.input.version}: the bake is inconclusive for ${unjudged.join(', ')} (no data or the metrics backend failed). An approver decides: approve to keep it, reject to roll back.`,
      );
      await condition(() => this.bakeDecision !== null);
      const decision = this.bakeDecision;
      if (decision?.kind === 'rejected')
        throw new ReleaseStopped(
          'rolled-back',
          `rolled back after an inconclusive bake by ${decision.by}: ${decision.reason}`,
        );
      return 'kept by an approver';
    });
  }

  /**
   * The changes of this release from its commits, when the request gave none: since the tag of the version
   * production ran before, or the whole history when there is no such tag (a first release).
   */
  private async changesSinceLastRelease(): Promise<ReleaseChanges> {
    const to = this.input.commit;
    const previous = this.previousImageTag;
    const from = previous && /^\d+\.\d+\.\d+$/.test(previous) ? `v${previous}` : undefined;
    try {
      try {
        return changesFromCommits((await read.listCommitsBetween({ ...(from ? { from } : {}), to })).commits);
      } catch (err) {
        if (!from || !describeError(err).startsWith(FailureType.NotFound)) throw err;
        this.journal.note('changelog from commits', 'skipped', `no tag ${from}: using the whole history`);
        return changesFromCommits((await read.listCommitsBetween({ to })).commits);
      }
    } catch (err) {
      this.journal.note('changelog from commits', 'failed', describeError(err));
      return { added: [], fixed: [], changed: [] };
    }
  }

  private async finalize(settings: ReleaseSettings) {
    const journal = this.journal;
    const { version, commit } = this.input;
    const tag = `v${version}`;
    await journal.step(
      'create release tag',
      () => quick.createTag({ name: tag, commit, message: `Release ${tag}` }),
      (t) => `${t.name} -> ${t.commit}`,
    );
    const changes = this.input.changes ?? (await this.changesSinceLastRelease());
    const date = releaseDate(Date.now(), settings.organizationTimeZone);
    const changelogEntry = renderChangelogEntry({ version, date, changes });
    const docs = docsSnapshotPath(settings.docsSnapshotTemplate, version);
    journal.audit({
      step: 'finalizing',
      action: 'artifacts',
      details: { tag, changelogPath: settings.changelogPath, docsSnapshotPath: docs },
    });
    await journal.annotate(
      `Release ${tag} live in ${settings.productionEnvironment} (${this.status.digest})`,
      ['release', 'aceh-release', tag],
    );
    try {
      await quick.purgeCache({ everything: true });
    } catch (err) {
      journal.note('purge CDN cache', 'failed', describeError(err));
    }
    await journal.notify(
      `Released ${tag} to ${settings.productionEnvironment} with ${settings.strategy.type} (${this.status.digest}); approved by ${
        this.status.approvals
          .filter((a) => a.decision === 'approved')
          .map((a) => a.approver)
          .join(', ') || 'nobody (no approval required)'
      }.`,
    );
    return { tag, changelogEntry, changelogPath: settings.changelogPath, docsSnapshotPath: docs };
  }
}
