/**
 * The part of the GitHub REST API (version 2022-11-28) the CI activities use, after the REST reference
 * ("Workflows": create a workflow dispatch event; "Workflow runs": list workflow runs for a repository, get a
 * workflow run; "Commits": get a commit). GitHub publishes an OpenAPI description
 * (`github/rest-api-description`), but it is not in the project's reference folder; these shapes are typed
 * by hand from the reference pages, and only the fields the activities read are required.
 */
import { z } from 'zod';

export const GITHUB_API_VERSION = '2022-11-28';

/** A workflow run (`workflow-run` in the reference), the fields the activities read. */
export const WorkflowRun = z.object({
  id: z.number().int(),
  name: z.string().nullable().optional(),
  head_branch: z.string().nullable().optional(),
  head_sha: z.string(),
  /** `.github/workflows/build.yml`, sometimes with `@<ref>` appended. */
  path: z.string(),
  /** The run's title: the workflow's `run-name` when it declares one. */
  display_title: z.string(),
  run_number: z.number().int(),
  run_attempt: z.number().int().optional(),
  event: z.string(),
  /** queued, in_progress, completed, requested, waiting, pending, action_required. */
  status: z.string().nullable(),
  /** success, failure, neutral, cancelled, skipped, timed_out, action_required, stale, startup_failure. */
  conclusion: z.string().nullable(),
  workflow_id: z.number().int(),
  url: z.string(),
  html_url: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type WorkflowRun = z.infer<typeof WorkflowRun>;

/** `GET /repos/{owner}/{repo}/actions/runs`. */
export const WorkflowRunList = z.object({
  total_count: z.number().int(),
  workflow_runs: z.array(WorkflowRun),
});

/** `POST .../dispatches` with `return_run_details: true` (since 2026-02): 200 with the run it created. */
export const DispatchRunDetails = z.object({
  workflow_run_id: z.number().int(),
  run_url: z.string(),
  html_url: z.string(),
});

/** `GET /repos/{owner}/{repo}/commits/{ref}`: the commit a branch or tag points at. */
export const CommitRef = z.object({ sha: z.string() });

/**
 * The fetch the activities use: GitHub signals an exhausted rate limit with 403 (or 429) and
 * `x-ratelimit-remaining: 0`, or a secondary limit with `retry-after`. Such answers become 429 with a
 * `retry-after` (seconds until `x-ratelimit-reset` when there is none), so the one failure table makes them
 * retryable `RateLimited` rather than `Unauthorized`.
 */
export function withGitHubRateLimits(base: typeof fetch, nowMs: () => number = Date.now): typeof fetch {
  return async (input, init) => {
    const res = await base(input, init);
    if (res.status !== 403 && res.status !== 429) return res;
    const retryAfter = res.headers.get('retry-after');
    const remaining = res.headers.get('x-ratelimit-remaining');
    if (res.status === 403 && remaining !== '0' && retryAfter === null) return res;
    const headers = new Headers(res.headers);
    if (retryAfter === null) {
      const reset = Number(res.headers.get('x-ratelimit-reset') ?? Number.NaN);
      const seconds = Number.isFinite(reset) ? Math.max(1, Math.ceil(reset - nowMs() / 1000)) : 60;
      headers.set('retry-after', String(seconds));
    }
    return new Response(res.body, { status: 429, statusText: 'Too Many Requests', headers });
  };
}
