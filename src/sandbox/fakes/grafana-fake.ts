/**
 * A Grafana fake for the annotations part of the legacy HTTP API (`/api/annotations`), after Grafana's
 * documentation (`docs/sources/developer-resources/api-reference/http-api/api-legacy/annotations.md` in
 * grafana/grafana) as summarised in the project's API contract notes (Grafana section); the OpenAPI files
 * Grafana publishes are too large to keep here.
 *
 * - Auth `Authorization: Bearer <service-account token>`: 401 `{"message": ...}` without a valid one, 403
 *   when the token lacks `annotations:read` / `annotations:create`; `X-Grafana-Org-Id` picks the org.
 * - `POST /api/annotations` JSON `{text (required), tags?, time?, timeEnd?, dashboardUID?, dashboardId?,
 *   panelId?, data?}` → 200 `{"message":"Annotation added","id":<int>}`; an unknown dashboard → 404.
 * - `GET /api/annotations?from=&to=&limit=&tags=a&tags=b&matchAny=&type=annotation|alert&dashboardUID=
 *   &dashboardId=&panelId=&userId=&alertId=&alertUID=` → an array of annotations, newest first; `tags`
 *   filter by all given tags unless `matchAny=true`; `limit` 100 by default.
 *
 * A request outside this contract (an unknown field or parameter, a wrong type) is answered as Grafana
 * would (400) and recorded as a violation.
 */
import type { FakeResponse, RecordedRequest } from './scripted-http-server';
import { ScriptedHttpServer } from './scripted-http-server';

export interface GrafanaAnnotation {
  id: number;
  alertId: number;
  dashboardId: number;
  dashboardUID: string;
  panelId: number;
  userId: number;
  newState: string;
  prevState: string;
  created: number;
  updated: number;
  time: number;
  timeEnd: number;
  text: string;
  tags: string[];
  login: string;
  email: string;
  avatarUrl: string;
  data: Record<string, unknown>;
}

export interface GrafanaFakeOptions {
  token: string;
  orgId?: number;
  permissions?: ('annotations:read' | 'annotations:create')[];
  dashboards?: string[];
}

const POST_FIELDS: Record<string, (v: unknown) => boolean> = {
  text: (v) => typeof v === 'string',
  tags: (v) => Array.isArray(v) && v.every((t) => typeof t === 'string'),
  time: (v) => Number.isInteger(v),
  timeEnd: (v) => Number.isInteger(v),
  dashboardUID: (v) => typeof v === 'string',
  dashboardId: (v) => Number.isInteger(v),
  panelId: (v) => Number.isInteger(v),
  data: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
};

const SEARCH_PARAMS: Record<string, (v: string) => boolean> = {
  from: (v) => /^\d+$/.test(v),
  to: (v) => /^\d+$/.test(v),
  limit: (v) => /^\d+$/.test(v),
  alertId: (v) => /^\d+$/.test(v),
  alertUID: () => true,
  dashboardId: (v) => /^\d+$/.test(v),
  dashboardUID: () => true,
  panelId: (v) => /^\d+$/.test(v),
  userId: (v) => /^\d+$/.test(v),
  type: (v) => v === 'alert' || v === 'annotation',
  tags: () => true,
  matchAny: (v) => v === 'true' || v === 'false',
};

export class GrafanaFake {
  readonly annotations: GrafanaAnnotation[] = [];
  private nextId = 1;

  private constructor(
    readonly server: ScriptedHttpServer,
    private readonly options: GrafanaFakeOptions,
  ) {}

  static async start(options: GrafanaFakeOptions): Promise<GrafanaFake> {
    let fake: GrafanaFake | undefined;
    await ScriptedHttpServer.start((server) => {
      const created = new GrafanaFake(server, options);
      fake = created;
      return (req) => created.handle(req);
    });
    if (!fake) throw new Error('GrafanaFake did not start');
    return fake;
  }

  get baseUrl(): string {
    return this.server.baseUrl;
  }

  /** Requests that broke the documented contract; a test expects none. */
  get violations(): string[] {
    return this.server.violations;
  }

  close(): Promise<void> {
    return this.server.close();
  }

  private refuse(status: number, message: string): FakeResponse {
    this.server.violation(`${status}: ${message}`);
    return { status, body: { message } };
  }

  private handle(req: RecordedRequest): FakeResponse {
    if (req.headers.authorization !== `Bearer ${this.options.token}`)
      return this.refuse(401, 'Invalid API key');
    const org = req.headers['x-grafana-org-id'];
    if (org !== undefined && org !== String(this.options.orgId ?? 1))
      return this.refuse(401, 'User is not a member of the organization');
    if (req.url.pathname !== '/api/annotations') return this.refuse(404, 'Not found');
    const permissions = this.options.permissions ?? ['annotations:read', 'annotations:create'];
    if (req.method === 'GET') {
      if (!permissions.includes('annotations:read'))
        return this.refuse(
          403,
          "You'll need additional permissions to perform this action. Permissions needed: annotations:read",
        );
      return this.search(req.url.searchParams);
    }
    if (req.method === 'POST') {
      if (!permissions.includes('annotations:create'))
        return this.refuse(
          403,
          "You'll need additional permissions to perform this action. Permissions needed: annotations:create",
        );
      return this.create(req);
    }
    return this.refuse(405, 'Method Not Allowed');
  }

  private search(params: URLSearchParams): FakeResponse {
    for (const [name, value] of params) {
      const check = SEARCH_PARAMS[name];
      if (!check) this.server.violation(`unknown annotation search parameter ${name}`);
      else if (!check(value)) return this.refuse(400, `bad request data: ${name}=${value}`);
    }
    const tags = params.getAll('tags');
    const matchAny = params.get('matchAny') === 'true';
    const from = params.get('from');
    const to = params.get('to');
    const type = params.get('type');
    const dashboardUID = params.get('dashboardUID');
    const limit = Number(params.get('limit') ?? 100);
    const found = this.annotations
      .filter((a) => {
        if (tags.length > 0) {
          const hit = (t: string) => a.tags.includes(t);
          if (matchAny ? !tags.some(hit) : !tags.every(hit)) return false;
        }
        if (from && to && (a.time > Number(to) || a.timeEnd < Number(from))) return false;
        if (type === 'alert' && a.alertId === 0) return false;
        if (type === 'annotation' && a.alertId !== 0) return false;
        if (dashboardUID && a.dashboardUID !== dashboardUID) return false;
        return true;
      })
      .sort((a, b) => b.time - a.time)
      .slice(0, limit);
    return { status: 200, body: found };
  }

  private create(req: RecordedRequest): FakeResponse {
    if (!String(req.headers['content-type'] ?? '').startsWith('application/json'))
      return this.refuse(415, 'Unsupported Media Type');
    let body: unknown;
    try {
      body = JSON.parse(req.body);
    } catch {
      return this.refuse(400, 'bad request data');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return this.refuse(400, 'bad request data');
    const fields = body as Record<string, unknown>;
    for (const [name, value] of Object.entries(fields)) {
      const check = POST_FIELDS[name];
      if (!check) this.server.violation(`unknown annotation field ${name}`);
      else if (!check(value)) return this.refuse(400, `bad request data: ${name}`);
    }
    if (typeof fields['text'] !== 'string' || fields['text'] === '')
      return this.refuse(400, 'Failed to save annotation: text field should not be empty');
    const dashboardUID = typeof fields['dashboardUID'] === 'string' ? fields['dashboardUID'] : '';
    if (dashboardUID && !(this.options.dashboards ?? []).includes(dashboardUID))
      return this.refuse(404, 'Dashboard not found');
    const now = Date.now();
    const time = typeof fields['time'] === 'number' ? fields['time'] : now;
    const annotation: GrafanaAnnotation = {
      id: this.nextId++,
      alertId: 0,
      dashboardId: 0,
      dashboardUID,
      panelId: typeof fields['panelId'] === 'number' ? fields['panelId'] : 0,
      userId: 7,
      newState: '',
      prevState: '',
      created: now,
      updated: now,
      time,
      timeEnd: typeof fields['timeEnd'] === 'number' ? fields['timeEnd'] : time,
      text: fields['text'],
      tags: Array.isArray(fields['tags']) ? (fields['tags'] as string[]) : [],
      login: 'sa-aceh-release',
      email: 'sa-aceh-release',
      avatarUrl: '/avatar/46d229b033af06a191ff2267bca9ae56',
      data: {},
    };
    this.annotations.push(annotation);
    return { status: 200, body: { message: 'Annotation added', id: annotation.id } };
  }
}
