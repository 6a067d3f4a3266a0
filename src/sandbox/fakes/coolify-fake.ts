/**
 * A Coolify API v4 fake on 127.0.0.1 for the activity tests, following the official OpenAPI description
 * (`src/sandbox/fakes/specs/coolify-openapi.json`, v4.3.10) and, where the description is silent or
 * wrong, the server's controllers:
 * - bearer tokens with abilities (`read`, `write`, `deploy`, `root`): 401 `Unauthenticated.` for an unknown
 *   token, 403 `Missing required permissions: <ability>` for a missing ability (routes/api.php);
 * - applications (`GET`/`PATCH /applications/{uuid}`), `POST /deploy?uuid=` with the server's de-duplication
 *   ("Deployment already queued for this commit." with a fresh uuid that is never stored) and the full-queue
 *   429 with `Retry-After: 60`;
 * - deployments that move `queued` -> `in_progress` -> `finished` | `failed` | `cancelled-by-user` as they are
 *   polled (`GET /deployments/{uuid}`), `GET /deployments/applications/{uuid}` as the server answers it
 *   (`{count, deployments}`), `POST /deployments/{uuid}/cancel`;
 * - `GET /version` (text), and from version 4.3.0 on `GET /applications/{uuid}/rollback-images` and
 *   `POST /applications/{uuid}/rollback` (404 on older versions, where the routes do not exist).
 * A Docker-image deployment runs the tag pinned on the application when it starts, as the server's
 * ApplicationDeploymentJob does, whatever `commit` a rollback carries.
 *
 * Every request is checked against the document before it is answered and every answer before it is sent
 * (src/sandbox/fakes/openapi-contract.ts); what breaks the contract lands in `violations`, which tests expect empty.
 * The two documented differences between the document and the server are declared as deviations.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { OpenApiContract } from './openapi-contract';
import type { MatchedOperation } from './openapi-contract';

export const COOLIFY_SPEC = path.join(__dirname, 'specs', 'coolify-openapi.json');

export type DeploymentOutcome = 'finished' | 'failed' | 'cancelled-by-user' | 'never';

export interface FakeApplication {
  id: number;
  uuid: string;
  name: string;
  build_pack: string;
  docker_registry_image_name: string | null;
  docker_registry_image_tag: string | null;
  status: string;
  fqdn: string | null;
  /** Image tags present on the server (what `rollback-images` lists). */
  localImageTags: string[];
  /** The tag the last finished deployment runs. */
  runningTag: string | null;
  /** How the application's next deployments end, one entry per deployment; then `defaultOutcome`. */
  outcomes: DeploymentOutcome[];
}

export interface FakeDeployment {
  id: number;
  deployment_uuid: string;
  application: FakeApplication;
  status: 'queued' | 'in_progress' | 'finished' | 'failed' | 'cancelled-by-user';
  outcome: DeploymentOutcome;
  commit: string;
  rollback: boolean;
  is_api: boolean;
  polls: number;
  /** The tag the deployment runs, fixed when it starts. */
  imageTag: string | null;
  created_at: string;
  updated_at: string;
}

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: string;
  operationId?: string;
}

interface Injection {
  operationId?: string;
  status: number;
  retryAfterSeconds?: number;
  body?: unknown;
}

interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** A text body (`GET /version`). */
  text?: string;
}

const ABILITY_BY_OPERATION: Record<string, string> = {
  version: 'read',
  'get-application-by-uuid': 'read',
  'update-application-by-uuid': 'write',
  'deploy-by-tag-or-uuid': 'deploy',
  'get-deployment-by-uuid': 'read',
  'list-deployments-by-app-uuid': 'read',
  'cancel-deployment-by-uuid': 'deploy',
  'list-application-rollback-images': 'read',
  'rollback-application-by-uuid': 'deploy',
};

function laravelTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

function publicId(): string {
  let id = '';
  while (id.length < 24) id += Math.random().toString(36).slice(2);
  return id.slice(0, 24);
}

function versionAtLeast43(version: string): boolean {
  const m = /^v?(\d+)\.(\d+)\.(\d+)(-.+)?$/.exec(version.trim());
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major !== 4) return major > 4;
  return minor > 3 || (minor === 3 && m[4] === undefined);
}

export class CoolifyFake {
  readonly violations: string[] = [];
  readonly requests: FakeRequest[] = [];
  readonly applications = new Map<string, FakeApplication>();
  readonly deployments: FakeDeployment[] = [];
  /** Token -> abilities. */
  readonly tokens = new Map<string, string[]>();
  version = '4.3.10';
  /** Polls a new deployment stays `queued`, then `in_progress`, before it ends. */
  queuedPolls = 1;
  runningPolls = 2;
  defaultOutcome: DeploymentOutcome = 'finished';
  /** Queued deployments at which the queue is full (`deployment_queue_limit`). */
  queueLimit = 25;
  /** When false, `rollback-images` cannot inspect the server and lists nothing. */
  serverFunctional = true;
  /** When set, `POST /deploy` refuses the application with this 200 message (team role too low). */
  deployRefusal: string | undefined;

  private readonly contract = OpenApiContract.fromFile(COOLIFY_SPEC, {
    deviations: [
      {
        kind: 'response-schema',
        operationId: 'list-deployments-by-app-uuid',
        status: 200,
        schema: {
          type: 'object',
          required: ['count', 'deployments'],
          properties: {
            count: { type: 'integer' },
            deployments: {
              type: 'array',
              items: { $ref: 'openapi#/components/schemas/ApplicationDeploymentQueue' },
            },
          },
        },
        reason:
          'DeployController::get_application_deployments returns {count, deployments}; the document says array of Application (README section 1)',
      },
      {
        kind: 'ignore-response-error',
        operationId: 'get-application-by-uuid',
        instancePath: '/build_pack',
        keyword: 'enum',
        reason: "the server's build packs include dockerimage, which the document's enum lacks",
      },
    ],
  });
  private readonly injections: Injection[] = [];
  private readonly corruptions: {
    operationId: string;
    mutate: (body: Record<string, unknown>) => unknown;
  }[] = [];
  private readonly hooks: { operationId: string; action: () => void }[] = [];
  private nextId = 1;
  private server: http.Server | undefined;
  private url = '';

  private constructor() {}

  static async start(options: { token: string; readOnlyToken?: string }): Promise<CoolifyFake> {
    const fake = new CoolifyFake();
    fake.tokens.set(options.token, ['read', 'write', 'deploy']);
    if (options.readOnlyToken) fake.tokens.set(options.readOnlyToken, ['read']);
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => fake.handle(req, Buffer.concat(chunks).toString('utf8'), res));
    });
    fake.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`;
    return fake;
  }

  /** The API base, `http://127.0.0.1:<port>/api/v1`. */
  get baseUrl(): string {
    return this.url;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Forgets applications, deployments, requests, violations and knobs (tokens stay). */
  reset(): void {
    this.violations.length = 0;
    this.requests.length = 0;
    this.applications.clear();
    this.deployments.length = 0;
    this.injections.length = 0;
    this.corruptions.length = 0;
    this.hooks.length = 0;
    this.version = '4.3.10';
    this.queuedPolls = 1;
    this.runningPolls = 2;
    this.defaultOutcome = 'finished';
    this.queueLimit = 25;
    this.serverFunctional = true;
    this.deployRefusal = undefined;
  }

  addApplication(partial: Partial<FakeApplication> & { uuid: string }): FakeApplication {
    const app: FakeApplication = {
      id: this.nextId++,
      name: `app-${partial.uuid}`,
      build_pack: 'dockerimage',
      docker_registry_image_name: 'registry.luxima.id/aceh-commerce',
      docker_registry_image_tag: 'v1.0.0',
      status: 'running:healthy',
      fqdn: 'https://staging.acehcommerce.id',
      localImageTags: [],
      runningTag: partial.docker_registry_image_tag ?? 'v1.0.0',
      outcomes: [],
      ...partial,
    };
    this.applications.set(app.uuid, app);
    return app;
  }

  /** A deployment someone else started (not through the activity). */
  addDeployment(
    app: FakeApplication,
    status: FakeDeployment['status'],
    outcome: DeploymentOutcome = 'finished',
  ) {
    return this.createDeployment(app, { commit: 'HEAD', rollback: false, status, outcome });
  }

  /** The next request (of `operationId`, when given) is answered with `status` instead. */
  inject(injection: Injection): void {
    this.injections.push(injection);
  }

  /** Runs `action` just before the next request of `operationId` is answered (to stage a race). */
  beforeNext(operationId: string, action: () => void): void {
    this.hooks.push({ operationId, action });
  }

  /** The next 2xx answer of `operationId` is passed through `mutate` (to break the contract on purpose). */
  corruptNext(operationId: string, mutate: (body: Record<string, unknown>) => unknown): void {
    this.corruptions.push({ operationId, mutate });
  }

  deployment(uuid: string): FakeDeployment | undefined {
    return this.deployments.find((d) => d.deployment_uuid === uuid);
  }

  private createDeployment(
    app: FakeApplication,
    init: {
      commit: string;
      rollback: boolean;
      status?: FakeDeployment['status'];
      outcome?: DeploymentOutcome;
    },
  ): FakeDeployment {
    const now = Date.now();
    const d: FakeDeployment = {
      id: this.nextId++,
      deployment_uuid: publicId(),
      application: app,
      status: init.status ?? 'queued',
      outcome: init.outcome ?? app.outcomes.shift() ?? this.defaultOutcome,
      commit: init.commit,
      rollback: init.rollback,
      is_api: true,
      polls: 0,
      imageTag: init.status === 'in_progress' ? app.docker_registry_image_tag : null,
      created_at: laravelTime(now),
      updated_at: laravelTime(now),
    };
    this.deployments.push(d);
    return d;
  }

  /**
   * One poll's worth of progress, as the deployment job would make between two polls. A count of 0 polls
   * moves on within the same poll, so `queuedPolls = runningPolls = 0` ends a deployment at its first poll.
   */
  private advance(d: FakeDeployment): void {
    d.polls += 1;
    const before = d.status;
    if (d.status === 'queued' && d.polls > this.queuedPolls) {
      d.status = 'in_progress';
      d.imageTag = d.application.docker_registry_image_tag;
    }
    if (
      d.status === 'in_progress' &&
      d.polls > this.queuedPolls + this.runningPolls &&
      d.outcome !== 'never'
    ) {
      d.status = d.outcome;
      if (d.outcome === 'finished') {
        d.application.runningTag = d.imageTag;
        d.application.status = 'running:healthy';
        if (d.imageTag && !d.application.localImageTags.includes(d.imageTag)) {
          d.application.localImageTags.push(d.imageTag);
        }
      }
    }
    if (d.status !== before) d.updated_at = laravelTime(Date.now());
  }

  private deploymentJson(d: FakeDeployment): Record<string, unknown> {
    return {
      id: d.id,
      application_id: String(d.application.id),
      deployment_uuid: d.deployment_uuid,
      pull_request_id: 0,
      force_rebuild: false,
      commit: d.commit,
      status: d.status,
      is_webhook: false,
      is_api: d.is_api,
      restart_only: false,
      server_id: 0,
      application_name: d.application.name,
      server_name: 'localhost',
      deployment_url: `/project/p-aceh/environment/e-staging/application/${d.application.uuid}/deployment/${d.deployment_uuid}`,
      destination_id: '0',
      only_this_server: false,
      rollback: d.rollback,
      docker_registry_image_tag: null,
      configuration_hash: null,
      created_at: d.created_at,
      updated_at: d.updated_at,
    };
  }

  private applicationJson(app: FakeApplication): Record<string, unknown> {
    return {
      id: app.id,
      uuid: app.uuid,
      name: app.name,
      description: null,
      fqdn: app.fqdn,
      build_pack: app.build_pack,
      docker_registry_image_name: app.docker_registry_image_name,
      docker_registry_image_tag: app.docker_registry_image_tag,
      git_repository: 'coollabsio/coolify',
      git_branch: 'main',
      git_commit_sha: 'HEAD',
      ports_exposes: '3000',
      health_check_enabled: false,
      status: app.status,
      destination_type: 'App\\Models\\StandaloneDocker',
      destination_id: 0,
      environment_id: 1,
      created_at: '2026-01-05T08:00:00.000000Z',
      updated_at: laravelTime(Date.now()),
    };
  }

  private handle(req: http.IncomingMessage, body: string, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const { operation, violations } = this.contract.validateRequest({
      method,
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body,
    });
    this.violations.push(...violations);
    this.requests.push({
      method,
      path: url.pathname,
      query: url.searchParams,
      body,
      operationId: operation?.operationId,
    });
    let answer: Answer;
    try {
      answer = this.route(operation, req.headers.authorization, url, body);
    } catch (err) {
      answer = { status: 500, body: { message: `fake failed: ${(err as Error).message}` } };
    }
    this.send(res, operation, answer);
  }

  private send(res: http.ServerResponse, operation: MatchedOperation | undefined, answer: Answer): void {
    let payload = answer.text ?? '';
    let contentType = 'text/html; charset=UTF-8';
    if (answer.text === undefined) {
      let value: unknown = answer.body ?? {};
      const corruption =
        operation && answer.status < 300
          ? this.corruptions.findIndex((c) => c.operationId === operation.operationId)
          : -1;
      if (corruption >= 0) {
        const [c] = this.corruptions.splice(corruption, 1);
        if (c) value = c.mutate(value as Record<string, unknown>);
      }
      payload = JSON.stringify(value);
      contentType = 'application/json';
    }
    if (operation) {
      this.violations.push(
        ...this.contract.validateResponse(operation, { status: answer.status, contentType, body: payload }),
      );
    }
    res.writeHead(answer.status, { 'content-type': contentType, ...(answer.headers ?? {}) });
    res.end(payload);
  }

  private route(
    operation: MatchedOperation | undefined,
    authorization: string | undefined,
    url: URL,
    body: string,
  ): Answer {
    if (!operation) return { status: 404, body: { message: 'Not found.' } };
    const hook = this.hooks.findIndex((h) => h.operationId === operation.operationId);
    if (hook >= 0) this.hooks.splice(hook, 1)[0]?.action();
    const injected = this.injections.findIndex(
      (i) => i.operationId === undefined || i.operationId === operation.operationId,
    );
    if (injected >= 0) {
      const [i] = this.injections.splice(injected, 1);
      if (i) {
        return {
          status: i.status,
          headers:
            i.retryAfterSeconds !== undefined ? { 'retry-after': String(i.retryAfterSeconds) } : undefined,
          body: i.body ?? { message: i.status === 429 ? 'Too Many Attempts.' : 'Server Error' },
        };
      }
    }
    const token = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
    const abilities = token ? this.tokens.get(token) : undefined;
    if (!abilities) return { status: 401, body: { message: 'Unauthenticated.' } };
    const ability = ABILITY_BY_OPERATION[operation.operationId] ?? 'root';
    if (!abilities.includes('root') && !abilities.includes(ability)) {
      return { status: 403, body: { message: `Missing required permissions: ${ability}` } };
    }
    const uuid = operation.pathParams['uuid'] ?? '';
    switch (operation.operationId) {
      case 'version':
        return { status: 200, text: this.version };
      case 'get-application-by-uuid': {
        const app = this.applications.get(uuid);
        return app
          ? { status: 200, body: this.applicationJson(app) }
          : { status: 404, body: { message: 'Application not found.' } };
      }
      case 'update-application-by-uuid':
        return this.updateApplication(uuid, body);
      case 'deploy-by-tag-or-uuid':
        return this.deploy(url.searchParams);
      case 'get-deployment-by-uuid': {
        const d = this.deployment(uuid);
        if (!d) return { status: 404, body: { message: 'Deployment not found.' } };
        this.advance(d);
        return { status: 200, body: this.deploymentJson(d) };
      }
      case 'list-deployments-by-app-uuid': {
        const app = this.applications.get(uuid);
        if (!app) return { status: 404, body: { message: 'Application not found' } };
        const skip = Number(url.searchParams.get('skip') ?? 0);
        const take = Number(url.searchParams.get('take') ?? 10);
        const mine = this.deployments.filter((d) => d.application === app).sort((a, b) => b.id - a.id);
        return {
          status: 200,
          body: {
            count: mine.length,
            deployments: mine.slice(skip, skip + take).map((d) => this.deploymentJson(d)),
          },
        };
      }
      case 'cancel-deployment-by-uuid': {
        const d = this.deployment(uuid);
        if (!d) return { status: 404, body: { message: 'Deployment not found.' } };
        if (d.status !== 'queued' && d.status !== 'in_progress') {
          return {
            status: 400,
            body: { message: `Deployment cannot be cancelled. Current status: ${d.status}` },
          };
        }
        d.status = 'cancelled-by-user';
        return {
          status: 200,
          body: {
            message: 'Deployment cancelled successfully.',
            deployment_uuid: d.deployment_uuid,
            status: d.status,
          },
        };
      }
      case 'list-application-rollback-images':
        return this.rollbackImages(uuid);
      case 'rollback-application-by-uuid':
        return this.rollback(uuid, body);
      default:
        return { status: 404, body: { message: 'Not found.' } };
    }
  }

  private updateApplication(uuid: string, body: string): Answer {
    const app = this.applications.get(uuid);
    if (!app) return { status: 404, body: { message: 'Application not found' } };
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return { status: 400, body: { message: 'Invalid request.' } };
    }
    const tag = data['docker_registry_image_tag'];
    if (typeof tag === 'string') app.docker_registry_image_tag = tag;
    return { status: 200, body: { uuid: app.uuid } };
  }

  private queueFull(): boolean {
    return this.deployments.filter((d) => d.status === 'queued').length >= this.queueLimit;
  }

  private deploy(query: URLSearchParams): Answer {
    const uuids = (query.get('uuid') ?? '').split(',').filter(Boolean);
    if (uuids.length === 0) return { status: 400, body: { message: 'You must provide uuid or tag.' } };
    const entries: Record<string, string>[] = [];
    for (const uuid of uuids) {
      const app = this.applications.get(uuid);
      if (!app) continue;
      if (this.deployRefusal) {
        entries.push({ message: this.deployRefusal, resource_uuid: uuid });
        continue;
      }
      if (this.queueFull()) {
        return {
          status: 429,
          headers: { 'retry-after': '60' },
          body: { message: 'Deployment queue is full. Please wait for existing deployments to complete.' },
        };
      }
      const inFlight = this.deployments.find(
        (d) =>
          d.application === app &&
          d.commit === 'HEAD' &&
          (d.status === 'queued' || d.status === 'in_progress'),
      );
      if (inFlight) {
        // The server answers with the uuid it generated before it decided to skip, which it never stores.
        entries.push({
          message: 'Deployment already queued for this commit.',
          resource_uuid: uuid,
          deployment_uuid: publicId(),
        });
        continue;
      }
      const d = this.createDeployment(app, { commit: 'HEAD', rollback: false });
      entries.push({
        message: `Application ${app.name} deployment queued.`,
        resource_uuid: uuid,
        deployment_uuid: d.deployment_uuid,
      });
    }
    if (entries.length === 0) return { status: 404, body: { message: 'No resources found.' } };
    return { status: 200, body: { deployments: entries } };
  }

  private rollbackImages(uuid: string): Answer {
    if (!versionAtLeast43(this.version)) return { status: 404, body: { message: 'Not found.' } };
    const app = this.applications.get(uuid);
    if (!app) return { status: 404, body: { message: 'Application not found.' } };
    if (!this.serverFunctional) return { status: 200, body: { current: null, images: [] } };
    return {
      status: 200,
      body: {
        current: app.runningTag,
        images: app.localImageTags.map((tag) => ({
          tag,
          created_at: '2026-08-01 10:00:00 +0000 UTC',
          is_current: tag === app.runningTag,
        })),
      },
    };
  }

  private rollback(uuid: string, body: string): Answer {
    if (!versionAtLeast43(this.version)) return { status: 404, body: { message: 'Not found.' } };
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(body) as Record<string, unknown>;
    } catch {
      data = {};
    }
    const extra = Object.keys(data).filter((k) => k !== 'commit');
    if (typeof data['commit'] !== 'string' || extra.length > 0) {
      return {
        status: 422,
        body: {
          message: 'Validation failed.',
          errors: Object.fromEntries(extra.map((k) => [k, ['This field is not allowed.']])),
        },
      };
    }
    const app = this.applications.get(uuid);
    if (!app) return { status: 404, body: { message: 'Application not found.' } };
    if (this.queueFull()) {
      return {
        status: 400,
        body: { message: 'Deployment queue is full. Please wait for existing deployments to complete.' },
      };
    }
    const d = this.createDeployment(app, { commit: data['commit'], rollback: true });
    return {
      status: 200,
      body: { message: 'Rollback deployment queued.', deployment_uuid: d.deployment_uuid },
    };
  }
}
