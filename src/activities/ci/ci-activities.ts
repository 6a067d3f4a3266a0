/**
 * CI activities on GitHub Actions (L2: commit on main -> CI build & test -> image build & push): start the
 * build workflow of a commit for a release version, and follow its run to the end.
 *
 * Contract with the workflow file: it has a `workflow_dispatch` trigger with the inputs `version` and
 * `commit`, and a `run-name` that contains the version as a word (for example
 * `run-name: "build ${{ inputs.version }}"`). A run's inputs are not visible through the API; its title is,
 * and it is how a run is recognised when GitHub does not say which run a dispatch created.
 */
import { z } from 'zod';
import { FailureType, failure } from '../../errors';
import {
  cancellationSignal,
  heartbeat,
  idempotencyKey,
  lastHeartbeat,
  sleepCancellable,
  parseActivityInput,
} from '../activity-support';
import type { Fetch } from '../http/http-client';
import { HttpClient } from '../http/http-client';
import type { WorkflowRun as WorkflowRunType } from './github-actions-api';
import {
  CommitRef,
  DispatchRunDetails,
  GITHUB_API_VERSION,
  WorkflowRun,
  WorkflowRunList,
  withGitHubRateLimits,
} from './github-actions-api';

/** Input of `triggerBuild`: the branch or tag to run on, the commit it must point at, the release version. */
export const TriggerBuildInput = z.object({
  ref: z
    .string()
    .regex(
      /^(?!\/)(?!.*\/\/)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}(?<!\/)$/,
      'must be a branch or tag name such as main',
    ),
  commit: z.string().regex(/^[0-9a-f]{40}$/, 'must be a full 40-character commit SHA'),
  version: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/, 'must be a version such as v1.2.0 or v1.2.0-rc1'),
});
export type TriggerBuildInput = z.infer<typeof TriggerBuildInput>;

/** Result of `triggerBuild`; `reused` when the run existed already (earlier attempt or earlier release try). */
export const TriggerBuildResult = z.object({
  runId: z.number(),
  runUrl: z.string(),
  status: z.string().nullable(),
  commit: z.string(),
  version: z.string(),
  reused: z.boolean(),
});
export type TriggerBuildResult = z.infer<typeof TriggerBuildResult>;

/** Input of `waitForBuild`. */
export const WaitForBuildInput = z.object({ runId: z.number().int().positive() });
export type WaitForBuildInput = z.infer<typeof WaitForBuildInput>;

/** Result of `waitForBuild`: the run concluded `success`; `elapsedMs` counts from the first attempt. */
export const WaitForBuildResult = z.object({
  runId: z.number(),
  conclusion: z.literal('success'),
  runUrl: z.string(),
  headSha: z.string(),
  elapsedMs: z.number(),
  polls: z.number(),
});
export type WaitForBuildResult = z.infer<typeof WaitForBuildResult>;

/** What `triggerBuild` heartbeats: that it dispatched (and the run, once known), for the next attempt. */
const TriggerHeartbeat = z.object({
  key: z.string(),
  commit: z.string(),
  version: z.string(),
  dispatchedAtMs: z.number(),
  runId: z.number().optional(),
});
type TriggerHeartbeat = z.infer<typeof TriggerHeartbeat>;

/** What `waitForBuild` heartbeats on every poll. */
export const WaitForBuildHeartbeat = z.object({
  runId: z.number(),
  status: z.string().nullable(),
  startedAtMs: z.number(),
  elapsedMs: z.number(),
  polls: z.number(),
});
export type WaitForBuildHeartbeat = z.infer<typeof WaitForBuildHeartbeat>;

export interface CiActivitiesOptions {
  /** `https://api.github.com`, or `https://<ghes>/api/v3`. */
  apiBaseUrl: string;
  owner: string;
  repo: string;
  /** The workflow's file name (`build.yml`) or numeric id. */
  workflowFile: string;
  /** A token with `actions: write` (dispatch) and `actions: read`, `contents: read`. Resolved by the worker. */
  token: string;
  fetch?: Fetch;
  /** How often `waitForBuild` polls, and `triggerBuild` looks for the run it dispatched; 10 s by default. */
  pollIntervalMs?: number;
  /** How long after a dispatch the run must have appeared; 2 min by default. */
  findRunTimeoutMs?: number;
  /**
   * Ask the dispatch to answer with the run it created (`return_run_details`, GitHub.com since 2026-02);
   * true by default. Servers that answer 204 anyway are handled by searching.
   */
  returnRunDetails?: boolean;
  /** Per-request timeout; 30 s by default. */
  timeoutMs?: number;
}

export interface CiActivities {
  triggerBuild: (input: TriggerBuildInput) => Promise<TriggerBuildResult>;
  waitForBuild: (input: WaitForBuildInput) => Promise<WaitForBuildResult>;
}

/** True when `title` contains `version` as a whole word (`v1.2.0` is not in `build v1.2.0-rc1`). */
export function titleNamesVersion(title: string, version: string): boolean {
  const escaped = version.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^A-Za-z0-9._+-])${escaped}($|[^A-Za-z0-9._+-])`).test(title);
}

/**
 * Builds the CI activities over one repository and workflow.
 *
 * Idempotency (check-then-act; a dispatch carries no idempotency key and answers at best the run id):
 * `triggerBuild` first looks for a run of the workflow, event `workflow_dispatch`, `head_sha` = the commit,
 * whose title names the version, and returns the newest such run (`reused`) instead of dispatching again,
 * whatever its state: rebuilding the same commit and version is a decision for a person (re-run it in
 * GitHub, or release a new version). After a dispatch it heartbeats, with its idempotency key
 * (`<workflowId>/<activityId>`), that it dispatched and when, then the run id: a retry never dispatches a
 * second time, it keeps looking for the first run. Before dispatching it checks that `ref` points at
 * `commit` (a dispatch builds the tip of the ref). `waitForBuild` only reads; it heartbeats
 * `{runId, status, startedAtMs, elapsedMs, polls}` and a retry continues from those details.
 *
 * Failures: `InvalidInput`, `Unauthorized` (401/403), `NotFound` (unknown repository, workflow, ref or
 * run), `PolicyViolation` (the ref does not point at the commit, or moved before the run started),
 * `UpstreamRejected` (422: no `workflow_dispatch` trigger, wrong inputs; or no run appeared after the
 * dispatch, usually a `run-name` without the version), `RateLimited` (429, and 403 with an exhausted rate
 * limit, after its reset), `UpstreamUnavailable` (5xx, network), `ContractViolation`, `OperationFailed` (the
 * run concluded other than `success`; its URL is in the message and details). Cancellation cancels the
 * request or the wait, not the run.
 */
export function createCiActivities(options: CiActivitiesOptions): CiActivities {
  const pollIntervalMs = options.pollIntervalMs ?? 10_000;
  const findRunTimeoutMs = options.findRunTimeoutMs ?? 120_000;
  const repoPath = `/repos/${encodeURIComponent(options.owner)}/${encodeURIComponent(options.repo)}`;
  const workflowId = /^\d+$/.test(options.workflowFile) ? Number(options.workflowFile) : undefined;
  const http = new HttpClient({
    system: 'GitHub Actions',
    baseUrl: options.apiBaseUrl,
    headers: {
      authorization: `Bearer ${options.token}`,
      accept: 'application/vnd.github+json',
      'x-github-api-version': GITHUB_API_VERSION,
      'user-agent': 'aceh-release',
    },
    fetch: withGitHubRateLimits(options.fetch ?? fetch),
    timeoutMs: options.timeoutMs,
  });

  function isOurWorkflow(run: WorkflowRunType): boolean {
    if (workflowId !== undefined) return run.workflow_id === workflowId;
    const file = run.path.split('@')[0] ?? '';
    return file === options.workflowFile || file.endsWith(`/${options.workflowFile}`);
  }

  async function getRun(runId: number, signal: AbortSignal): Promise<WorkflowRunType> {
    const res = await http.request({
      path: `${repoPath}/actions/runs/${runId}`,
      schema: WorkflowRun,
      signal,
    });
    return res.body;
  }

  /** The newest dispatched run of our workflow for this commit whose title names the version. */
  async function findRun(
    commit: string,
    version: string,
    signal: AbortSignal,
  ): Promise<WorkflowRunType | undefined> {
    const res = await http.request({
      path: `${repoPath}/actions/runs`,
      query: { head_sha: commit, event: 'workflow_dispatch', per_page: 100 },
      schema: WorkflowRunList,
      signal,
    });
    return res.body.workflow_runs
      .filter((r) => r.head_sha === commit && isOurWorkflow(r) && titleNamesVersion(r.display_title, version))
      .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || b.id - a.id)[0];
  }

  function result(run: WorkflowRunType, input: TriggerBuildInput, reused: boolean): TriggerBuildResult {
    return {
      runId: run.id,
      runUrl: run.html_url,
      status: run.status,
      commit: input.commit,
      version: input.version,
      reused,
    };
  }

  function movedRef(input: TriggerBuildInput, run: WorkflowRunType) {
    return failure(
      FailureType.PolicyViolation,
      `run ${run.html_url} builds ${run.head_sha}, not ${input.commit}: ${input.ref} moved before the run started; ` +
        `dispatch on a tag of the commit`,
      { details: { runId: run.id, ref: input.ref, commit: input.commit, headSha: run.head_sha } },
    );
  }

  /** Polls for the run a dispatch at `dispatchedAtMs` created, until `findRunTimeoutMs` after it. */
  async function awaitDispatchedRun(
    input: TriggerBuildInput,
    beat: TriggerHeartbeat,
    signal: AbortSignal,
  ): Promise<WorkflowRunType> {
    for (;;) {
      const run = await findRun(input.commit, input.version, signal);
      if (run) return run;
      if (Date.now() - beat.dispatchedAtMs > findRunTimeoutMs) {
        throw failure(
          FailureType.UpstreamRejected,
          `GitHub accepted the dispatch of ${options.workflowFile} on ${input.ref}, but no run for commit ` +
            `${input.commit} titled with ${input.version} appeared within ${Math.round(findRunTimeoutMs / 1000)} s; ` +
            'check that the workflow\'s run-name contains "${{ inputs.version }}" and look at its runs in GitHub',
          {
            details: {
              workflowFile: options.workflowFile,
              ref: input.ref,
              commit: input.commit,
              version: input.version,
            },
          },
        );
      }
      heartbeat(beat);
      await sleepCancellable(pollIntervalMs);
    }
  }

  return {
    async triggerBuild(raw) {
      const input = parseActivityInput(TriggerBuildInput, raw, 'triggerBuild');
      const signal = cancellationSignal();
      const key = idempotencyKey();
      const previous = TriggerHeartbeat.safeParse(lastHeartbeat());
      const earlier =
        previous.success &&
        previous.data.key === key &&
        previous.data.commit === input.commit &&
        previous.data.version === input.version
          ? previous.data
          : undefined;

      if (earlier?.runId !== undefined) {
        heartbeat(earlier);
        return result(await getRun(earlier.runId, signal), input, true);
      }
      const existing = await findRun(input.commit, input.version, signal);
      if (existing) {
        heartbeat({
          key,
          commit: input.commit,
          version: input.version,
          dispatchedAtMs: Date.now(),
          runId: existing.id,
        });
        return result(existing, input, true);
      }
      if (earlier) {
        const run = await awaitDispatchedRun(input, earlier, signal);
        heartbeat({ ...earlier, runId: run.id });
        return result(run, input, false);
      }

      const tip = await http.request({
        path: `${repoPath}/commits/${input.ref.split('/').map(encodeURIComponent).join('/')}`,
        schema: CommitRef,
        signal,
      });
      if (tip.body.sha !== input.commit) {
        throw failure(
          FailureType.PolicyViolation,
          `${input.ref} points at ${tip.body.sha}, not at ${input.commit}; a dispatch builds the tip of the ref, ` +
            'so dispatch on a tag or branch whose tip is the commit to release',
          { details: { ref: input.ref, commit: input.commit, tip: tip.body.sha } },
        );
      }
      const dispatch = await http.request({
        method: 'POST',
        path: `${repoPath}/actions/workflows/${encodeURIComponent(options.workflowFile)}/dispatches`,
        body: {
          ref: input.ref,
          inputs: { version: input.version, commit: input.commit },
          ...(options.returnRunDetails === false ? {} : { return_run_details: true }),
        },
        schema: DispatchRunDetails,
        signal,
        acceptStatuses: [204],
      });
      const dispatchedAtMs = Date.now();
      let run: WorkflowRunType;
      if (dispatch.status === 204) {
        const beat: TriggerHeartbeat = { key, commit: input.commit, version: input.version, dispatchedAtMs };
        heartbeat(beat);
        run = await awaitDispatchedRun(input, beat, signal);
      } else {
        const runId = dispatch.body.workflow_run_id;
        heartbeat({
          key,
          commit: input.commit,
          version: input.version,
          dispatchedAtMs,
          runId,
        } satisfies TriggerHeartbeat);
        run = await getRun(runId, signal);
      }
      if (run.head_sha !== input.commit) throw movedRef(input, run);
      heartbeat({
        key,
        commit: input.commit,
        version: input.version,
        dispatchedAtMs,
        runId: run.id,
      } satisfies TriggerHeartbeat);
      return result(run, input, false);
    },

    async waitForBuild(raw) {
      const input = parseActivityInput(WaitForBuildInput, raw, 'waitForBuild');
      const signal = cancellationSignal();
      const previous = WaitForBuildHeartbeat.safeParse(lastHeartbeat());
      const resume = previous.success && previous.data.runId === input.runId ? previous.data : undefined;
      const startedAtMs = resume?.startedAtMs ?? Date.now();
      let polls = resume?.polls ?? 0;
      for (;;) {
        const run = await getRun(input.runId, signal);
        polls += 1;
        const elapsedMs = Date.now() - startedAtMs;
        if (run.status === 'completed') {
          if (run.conclusion === 'success') {
            return {
              runId: run.id,
              conclusion: 'success',
              runUrl: run.html_url,
              headSha: run.head_sha,
              elapsedMs,
              polls,
            };
          }
          throw failure(
            FailureType.OperationFailed,
            `CI run ${run.html_url} (${run.display_title}) concluded ${run.conclusion ?? 'without a conclusion'}; ` +
              'read its logs there, fix and release again',
            {
              details: {
                runId: run.id,
                runUrl: run.html_url,
                conclusion: run.conclusion,
                headSha: run.head_sha,
                elapsedMs,
              },
            },
          );
        }
        heartbeat({
          runId: run.id,
          status: run.status,
          startedAtMs,
          elapsedMs,
          polls,
        } satisfies WaitForBuildHeartbeat);
        await sleepCancellable(pollIntervalMs);
      }
    },
  };
}
