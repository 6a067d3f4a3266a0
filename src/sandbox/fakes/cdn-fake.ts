/**
 * A CDN fake with Cloudflare's cache-purge contract, after Cloudflare's API documentation (operation
 * `zone-purge` in cloudflare/api-schemas; developers.cloudflare.com/cache/how-to/purge-cache) as summarised
 * in the project's API contract notes (Cloudflare section); the OpenAPI file is too large to keep here.
 *
 * - `POST /zones/{zone_id}/purge_cache` with `Authorization: Bearer <API token>` (Cache Purge permission).
 * - JSON body with exactly one mode: `{"purge_everything": true}` | `{"files": [url | {url, headers}]}` |
 *   `{"tags": [...]}` | `{"hosts": [...]}` | `{"prefixes": [...]}`; at most 100 items per request.
 * - Answers the v4 envelope `{"success", "errors": [{code, message}], "messages": [], "result"}`:
 *   `result: {"id": "<purge id>"}` on success; errors with `success: false` and `result: null` — an unknown
 *   token 403 (code 10000 "Authentication error"), an unknown zone 404 (code 7003), a bad body 400 (code
 *   1012 et al.).
 *
 * A request outside the contract is answered as Cloudflare would and recorded as a violation.
 */
import { randomBytes } from 'node:crypto';
import type { FakeResponse, RecordedRequest } from './scripted-http-server';
import { ScriptedHttpServer } from './scripted-http-server';

const MODES = ['purge_everything', 'files', 'tags', 'hosts', 'prefixes'] as const;

export interface PurgeRecord {
  id: string;
  zone: string;
  everything: boolean;
  files: string[];
}

export class CdnFake {
  readonly purges: PurgeRecord[] = [];

  private constructor(
    readonly server: ScriptedHttpServer,
    private readonly options: { token: string; zones: string[]; maxItems?: number },
  ) {}

  static async start(options: { token: string; zones: string[]; maxItems?: number }): Promise<CdnFake> {
    let fake: CdnFake | undefined;
    await ScriptedHttpServer.start((server) => {
      const created = new CdnFake(server, options);
      fake = created;
      return (req) => created.handle(req);
    });
    if (!fake) throw new Error('CdnFake did not start');
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

  /** The v4 error envelope. */
  static error(
    status: number,
    code: number,
    message: string,
    headers?: Record<string, string>,
  ): FakeResponse {
    return {
      status,
      headers,
      body: { success: false, errors: [{ code, message }], messages: [], result: null },
    };
  }

  private refuse(status: number, code: number, message: string): FakeResponse {
    this.server.violation(`${status} (${code}): ${message}`);
    return CdnFake.error(status, code, message);
  }

  private handle(req: RecordedRequest): FakeResponse {
    const route = /^\/zones\/([^/]+)\/purge_cache$/.exec(req.url.pathname);
    if (!route) return this.refuse(404, 7000, 'No route for that URI');
    if (req.method !== 'POST')
      return this.refuse(405, 10405, 'Method not allowed for api_token authentication');
    if (req.headers.authorization !== `Bearer ${this.options.token}`)
      return this.refuse(403, 10000, 'Authentication error');
    const zone = route[1] ?? '';
    if (!this.options.zones.includes(zone))
      return this.refuse(
        404,
        7003,
        `Could not route to /zones/${zone}/purge_cache, perhaps your object identifier is invalid?`,
      );
    if (!String(req.headers['content-type'] ?? '').startsWith('application/json'))
      return this.refuse(400, 6003, 'Invalid request headers');
    let body: unknown;
    try {
      body = JSON.parse(req.body);
    } catch {
      return this.refuse(400, 6007, 'Malformed JSON in request body');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return this.refuse(400, 6007, 'Malformed JSON in request body');
    const fields = body as Record<string, unknown>;
    const unknown = Object.keys(fields).filter((k) => !(MODES as readonly string[]).includes(k));
    if (unknown.length > 0)
      return this.refuse(
        400,
        1012,
        `Request must contain one of "purge_everything", "files", "tags", "hosts" or "prefixes" (unknown: ${unknown.join(', ')})`,
      );
    const modes = MODES.filter((m) => fields[m] !== undefined);
    if (modes.length !== 1)
      return this.refuse(
        400,
        1012,
        'Request must contain one of "purge_everything", "files", "tags", "hosts" or "prefixes"',
      );
    const mode = modes[0];
    const files: string[] = [];
    if (mode === 'purge_everything') {
      if (fields['purge_everything'] !== true) return this.refuse(400, 1012, 'purge_everything must be true');
    } else {
      const items: unknown = fields[mode ?? ''];
      const max = this.options.maxItems ?? 100;
      if (!Array.isArray(items) || items.length === 0)
        return this.refuse(400, 1012, `${mode} must be a non-empty array`);
      if (items.length > max) return this.refuse(400, 1015, `More than ${max} ${mode} in one request`);
      for (const item of items as unknown[]) {
        const url: unknown =
          mode === 'files' && typeof item === 'object' && item !== null
            ? (item as { url?: unknown }).url
            : item;
        if (typeof url !== 'string') return this.refuse(400, 1012, `${mode} items must be strings`);
        if (mode === 'files' && !/^https?:\/\/[^/]+/.test(url))
          return this.refuse(400, 1012, `Invalid url ${url}`);
        files.push(url);
      }
    }
    const id = randomBytes(16).toString('hex');
    this.purges.push({ id, zone, everything: mode === 'purge_everything', files });
    return { status: 200, body: { success: true, errors: [], messages: [], result: { id } } };
  }
}
