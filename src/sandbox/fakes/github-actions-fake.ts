/**
 * A GitHub Actions REST fake on 127.0.0.1 (API version 2022-11-28) for the CI activity tests.
 *
 * GitHub publishes an official OpenAPI description (`github/rest-api-description`), but no machine-readable
 * description is in this repository, so this fake follows the REST reference pages by hand and checks the
 * requests against what they document, recording every breach in `violations` (tests expect none):
 * - every request: `Authorization: Bearer <token>` (401 `Bad credentials` otherwise), `Accept:
 *   application/vnd.github+json`, an `X-GitHub-Api-Version`, a `User-Agent` (GitHub refuses requests
 *   without one);
 * - `POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches`: JSON body with `ref` (required),
 *   `inputs` (object of the workflow's declared inputs, at most 25) and `return_run_details` (boolean), no
 *   other key. 204 without a body, or with `return_run_details: true` (GitHub.com since 2026-02) 200
 *   `{workflow_run_id, run_url, html_url}`; 404 for an unknown workflow; 422 for an unknown ref, a workflow
 *   without a `workflow_dispatch` trigger, unexpected or missing required inputs;
 * - `GET /repos/{owner}/{repo}/actions/runs` with the documented filters (`actor`, `branch`, `event`,
 *   `status`, `per_page`, `page`, `created`, `exclude_pull_requests`, `check_suite_id`, `head_sha`) ->
 *   `{total_count, workflow_runs}`; a dispatched run shows up only after `listDelay` listings, as on GitHub,
 *   where a run appears seconds after its dispatch;
 * - `GET /repos/{owner}/{repo}/actions/runs/{run_id}`: the run, moving `queued` -> `in_progress` ->
 *   `completed` (with the planned conclusion) as it is polled;
 * - `GET /repos/{owner}/{repo}/commits/{ref}`: the commit a branch or tag points at;
 * - an exhausted rate limit as GitHub answers it: 403 with `x-ratelimit-remaining: 0` and
 *   `x-ratelimit-reset`.
 * The run's title (`display_title`) is the workflow's `run-name` with the inputs filled in, or the workflow
 * name when it declares none.
 */
import type { FakeResponse, RecordedRequest } from './scripted-http-server';
import { ScriptedHttpServer } from './scripted-http-server';

export type RunConclusion = 'success' | 'failure' | 'cancelled' | 'timed_out' | 'never';

export interface FakeWorkflow {
  id: number;
  file: string;
  name: string;
  /** Declared `workflow_dispatch` inputs; undefined when the workflow has no such trigger. */
  inputs?: { name: string; required: boolean }[];
  /** `run-name`, with `{version}`/`{commit}` standing for the inputs; undefined: the title is the name. */
  runName?: string;
}

export interface FakeRun {
  id: number;
  workflow: FakeWorkflow;
  headSha: string;
  headBranch: string;
  title: string;
  event: string;
  status: 'queued' | 'in_progress' | 'completed';
  conclusion: RunConclusion | null;
  plan: RunConclusion;
  runNumber: number;
  polls: number;
  listingsUntilVisible: number;
  createdAt: string;
  updatedAt: string;
}

const LIST_FILTERS = new Set([
  'actor',
  'branch',
  'event',
  'status',
  'per_page',
  'page',
  'created',
  'exclude_pull_requests',
  'check_suite_id',
  'head_sha',
]);

export class GitHubActionsFake {
  readonly workflows: FakeWorkflow[] = [];
  readonly runs: FakeRun[] = [];
  /** Branch or tag -> commit SHA. */
  readonly refs = new Map<string, string>();
  /**
   * Consulted for a branch or tag missing from `refs`: the commit it points to, or undefined (the sandbox
   * answers from its git repository, so refs pushed there exist here too).
   */
  resolveRef: ((ref: string) => string | undefined) | undefined;
  /** Whether the dispatch honours `return_run_details` (GitHub.com) or always answers 204 (older servers). */
  supportsRunDetails = true;
  /** Listings a dispatched run stays invisible for. */
  listDelay = 1;
  queuedPolls = 1;
  runningPolls = 1;
  /** Conclusions of the next dispatched runs, in order; then `success`. */
  readonly nextConclusions: RunConclusion[] = [];
  private nextRunId = 9_100_000_001;
  private rateLimited = 0;

  private constructor(
    readonly server: ScriptedHttpServer,
    readonly owner: string,
    readonly repo: string,
    private readonly token: string,
  ) {}

  static async start(options: { token: string; owner: string; repo: string }): Promise<GitHubActionsFake> {
    const ready: { fake?: GitHubActionsFake } = {};
    const server = await ScriptedHttpServer.start(() => (req) => {
      if (!ready.fake) throw new Error('fake not ready');
      return ready.fake.handle(req);
    });
    ready.fake = new GitHubActionsFake(server, options.owner, options.repo, options.token);
    return ready.fake;
  }

  get baseUrl(): string {
    return this.server.baseUrl;
  }

  get violations(): string[] {
    return this.server.violations;
  }

  get requests(): RecordedRequest[] {
    return this.server.requests;
  }

  close(): Promise<void> {
    return this.server.close();
  }

  reset(): void {
    this.server.reset();
    this.workflows.length = 0;
    this.runs.length = 0;
    this.refs.clear();
    this.nextConclusions.length = 0;
    this.supportsRunDetails = true;
    this.listDelay = 1;
    this.queuedPolls = 1;
    this.runningPolls = 1;
    this.rateLimited = 0;
  }

  addWorkflow(workflow: Partial<FakeWorkflow> & { file: string }): FakeWorkflow {
    const w: FakeWorkflow = {
      id: 61_000_000 + this.workflows.length,
      name: 'Build and push image',
      inputs: [
        { name: 'version', required: true },
        { name: 'commit', required: true },
      ],
      runName: 'Build {version} ({commit})',
      ...workflow,
    };
    this.workflows.push(w);
    return w;
  }

  /** A run that exists already (an earlier dispatch, or another workflow). */
  addRun(
    workflow: FakeWorkflow,
    init: { headSha: string; inputs: Record<string, string>; plan?: RunConclusion; event?: string },
  ): FakeRun {
    return this.createRun(
      workflow,
      init.headSha,
      'main',
      init.inputs,
      init.plan ?? 'success',
      init.event ?? 'workflow_dispatch',
      0,
    );
  }

  /** The next `times` requests answer 403 with an exhausted rate limit. */
  exhaustRateLimit(times = 1): void {
    this.rateLimited = times;
  }

  run(id: number): FakeRun | undefined {
    return this.runs.find((r) => r.id === id);
  }

  private createRun(
    workflow: FakeWorkflow,
    headSha: string,
    headBranch: string,
    inputs: Record<string, string>,
    plan: RunConclusion,
    event: string,
    listingsUntilVisible: number,
  ): FakeRun {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const title = workflow.runName
      ? workflow.runName.replace(/\{(\w+)\}/g, (_, name: string) => inputs[name] ?? '')
      : workflow.name;
    const run: FakeRun = {
      id: this.nextRunId++,
      workflow,
      headSha,
      headBranch,
      title,
      event,
      status: 'queued',
      conclusion: null,
      plan,
      runNumber: this.runs.filter((r) => r.workflow === workflow).length + 1,
      polls: 0,
      listingsUntilVisible,
      createdAt: now,
      updatedAt: now,
    };
    this.runs.push(run);
    return run;
  }

  private lookupRef(ref: string): string | undefined {
    return this.refs.get(ref) ?? this.resolveRef?.(ref);
  }

  /** One poll's worth of progress; a count of 0 polls moves on within the same poll. */
  private advance(run: FakeRun): void {
    run.polls += 1;
    const before = run.status;
    if (run.status === 'queued' && run.polls > this.queuedPolls) run.status = 'in_progress';
    if (
      run.status === 'in_progress' &&
      run.polls > this.queuedPolls + this.runningPolls &&
      run.plan !== 'never'
    ) {
      run.status = 'completed';
      run.conclusion = run.plan;
    }
    if (run.status !== before) run.updatedAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  }

  private runJson(run: FakeRun): Record<string, unknown> {
    const api = `${this.baseUrl}/repos/${this.owner}/${this.repo}`;
    return {
      id: run.id,
      name: run.workflow.name,
      node_id: `WFR_${run.id}`,
      head_branch: run.headBranch,
      head_sha: run.headSha,
      path: `.github/workflows/${run.workflow.file}`,
      display_title: run.title,
      run_number: run.runNumber,
      event: run.event,
      status: run.status,
      conclusion: run.conclusion,
      workflow_id: run.workflow.id,
      check_suite_id: run.id + 1,
      url: `${api}/actions/runs/${run.id}`,
      html_url: `https://github.com/${this.owner}/${this.repo}/actions/runs/${run.id}`,
      pull_requests: [],
      created_at: run.createdAt,
      updated_at: run.updatedAt,
      run_attempt: 1,
      run_started_at: run.createdAt,
      jobs_url: `${api}/actions/runs/${run.id}/jobs`,
      logs_url: `${api}/actions/runs/${run.id}/logs`,
      workflow_url: `${api}/actions/workflows/${run.workflow.id}`,
      head_commit: { id: run.headSha, tree_id: run.headSha, message: 'release', timestamp: run.createdAt },
      repository: { id: 1, name: this.repo, full_name: `${this.owner}/${this.repo}` },
    };
  }

  private handle(req: RecordedRequest): FakeResponse {
    const where = `${req.method} ${req.url.pathname}`;
    if (req.headers['accept'] !== 'application/vnd.github+json') {
      this.server.violation(
        `${where}: Accept is ${String(req.headers['accept'])}, not application/vnd.github+json`,
      );
    }
    if (!req.headers['x-github-api-version'])
      this.server.violation(`${where}: no X-GitHub-Api-Version header`);
    if (!req.headers['user-agent']) this.server.violation(`${where}: no User-Agent header`);
    if (req.headers['authorization'] !== `Bearer ${this.token}`) {
      return {
        status: 401,
        body: {
          message: 'Bad credentials',
          documentation_url: 'https://docs.github.com/rest',
          status: '401',
        },
      };
    }
    if (this.rateLimited > 0) {
      this.rateLimited -= 1;
      return {
        status: 403,
        headers: {
          'x-ratelimit-limit': '5000',
          'x-ratelimit-remaining': '0',
          'x-ratelimit-used': '5000',
          'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 30),
        },
        body: {
          message: 'API rate limit exceeded for user ID 1.',
          documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api',
        },
      };
    }
    const prefix = `/repos/${this.owner}/${this.repo}`;
    const path = req.url.pathname;
    if (!path.startsWith(`${prefix}/`)) return this.notFound();
    const rest = path.slice(prefix.length);
    let m: RegExpExecArray | null;
    if (req.method === 'POST' && (m = /^\/actions\/workflows\/([^/]+)\/dispatches$/.exec(rest))) {
      return this.dispatch(decodeURIComponent(m[1] ?? ''), req);
    }
    if (req.method === 'GET' && rest === '/actions/runs') return this.listRuns(req);
    if (req.method === 'GET' && (m = /^\/actions\/runs\/(\d+)$/.exec(rest))) {
      const run = this.run(Number(m[1]));
      if (!run) return this.notFound();
      this.advance(run);
      return { status: 200, body: this.runJson(run) };
    }
    if (req.method === 'GET' && (m = /^\/commits\/(.+)$/.exec(rest))) {
      const ref = decodeURIComponent(m[1] ?? '');
      const sha = this.lookupRef(ref) ?? (/^[0-9a-f]{40}$/.test(ref) ? ref : undefined);
      if (!sha)
        return {
          status: 422,
          body: {
            message: `No commit found for SHA: ${ref}`,
            documentation_url: 'https://docs.github.com/rest/commits/commits#get-a-commit',
            status: '422',
          },
        };
      return {
        status: 200,
        body: {
          sha,
          node_id: `C_${sha}`,
          url: `${this.baseUrl}${prefix}/commits/${sha}`,
          commit: { message: 'release' },
        },
      };
    }
    this.server.violation(`${where}: not an endpoint the fake knows`);
    return this.notFound();
  }

  private notFound(): FakeResponse {
    return {
      status: 404,
      body: { message: 'Not Found', documentation_url: 'https://docs.github.com/rest', status: '404' },
    };
  }

  private unprocessable(message: string): FakeResponse {
    return {
      status: 422,
      body: {
        message,
        documentation_url: 'https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event',
        status: '422',
      },
    };
  }

  private dispatch(workflowRef: string, req: RecordedRequest): FakeResponse {
    const where = `POST dispatches`;
    if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) {
      this.server.violation(`${where}: body is not sent as application/json`);
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(req.body) as Record<string, unknown>;
    } catch {
      return { status: 400, body: { message: 'Problems parsing JSON' } };
    }
    for (const key of Object.keys(body)) {
      if (!['ref', 'inputs', 'return_run_details'].includes(key))
        this.server.violation(`${where}: unknown body key ${key}`);
    }
    if ('return_run_details' in body && typeof body['return_run_details'] !== 'boolean') {
      this.server.violation(`${where}: return_run_details is not a boolean`);
    }
    const workflow = this.workflows.find((w) => w.file === workflowRef || String(w.id) === workflowRef);
    if (!workflow) return this.notFound();
    if (typeof body['ref'] !== 'string')
      return this.unprocessable('Invalid request.\n\n"ref" wasn\'t supplied.');
    const sha = this.lookupRef(body['ref']);
    if (!sha) return this.unprocessable(`No ref found for: ${body['ref']}`);
    if (!workflow.inputs) return this.unprocessable("Workflow does not have 'workflow_dispatch' trigger");
    const inputs = (body['inputs'] ?? {}) as Record<string, unknown>;
    if (Object.keys(inputs).length > 25) this.server.violation(`${where}: more than 25 inputs`);
    const unexpected = Object.keys(inputs).filter((k) => !workflow.inputs?.some((i) => i.name === k));
    if (unexpected.length)
      return this.unprocessable(`Unexpected inputs provided: ${JSON.stringify(unexpected)}`);
    const missing = workflow.inputs.find((i) => i.required && inputs[i.name] === undefined);
    if (missing) return this.unprocessable(`Required input '${missing.name}' not provided`);
    const run = this.createRun(
      workflow,
      sha,
      body['ref'],
      Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, String(v)])),
      this.nextConclusions.shift() ?? 'success',
      'workflow_dispatch',
      this.listDelay,
    );
    if (this.supportsRunDetails && body['return_run_details'] === true) {
      return {
        status: 200,
        body: {
          workflow_run_id: run.id,
          run_url: `${this.baseUrl}/repos/${this.owner}/${this.repo}/actions/runs/${run.id}`,
          html_url: `https://github.com/${this.owner}/${this.repo}/actions/runs/${run.id}`,
        },
      };
    }
    return { status: 204 };
  }

  private listRuns(req: RecordedRequest): FakeResponse {
    const q = req.url.searchParams;
    for (const key of q.keys()) {
      if (!LIST_FILTERS.has(key)) this.server.violation(`GET actions/runs: unknown query parameter ${key}`);
    }
    const perPage = Number(q.get('per_page') ?? 30);
    if (!Number.isInteger(perPage) || perPage < 1 || perPage > 100)
      this.server.violation(`GET actions/runs: per_page ${perPage}`);
    const runs = this.runs
      .filter((r) => r.listingsUntilVisible === 0)
      .filter((r) => !q.get('head_sha') || r.headSha === q.get('head_sha'))
      .filter((r) => !q.get('event') || r.event === q.get('event'))
      .filter((r) => !q.get('branch') || r.headBranch === q.get('branch'))
      .sort((a, b) => b.id - a.id);
    for (const run of this.runs) if (run.listingsUntilVisible > 0) run.listingsUntilVisible -= 1;
    return {
      status: 200,
      body: { total_count: runs.length, workflow_runs: runs.slice(0, perPage).map((r) => this.runJson(r)) },
    };
  }
}
