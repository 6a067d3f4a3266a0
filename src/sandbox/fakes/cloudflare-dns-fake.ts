/**
 * A fake of the Cloudflare v4 DNS records API, on 127.0.0.1, for the tests of the DNS traffic provider.
 *
 * It follows Cloudflare's API conventions (a Bearer token, the v4 envelope
 * `{success, errors, messages, result}`) and its DNS records reference: `GET
 * /client/v4/zones/{zone_id}/dns_records` with exact-match filters and `result_info` paging, `GET|PATCH
 * /client/v4/zones/{zone_id}/dns_records/{dns_record_id}` where PATCH changes only the fields sent.
 * Cloudflare publishes an OpenAPI document, but it is too large to keep here, so the fake validates with
 * zod schemas written from that reference: every request the adapter sends (unknown query parameters,
 * unknown or ill-typed body fields, content not matching the record type are rejected as Cloudflare
 * does, with 400 and an error code) and every response it returns (a fake cannot drift from the envelope
 * it promises). Assumption where the reference is silent: an unknown zone answers 404 with code 7003.
 */
import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';

const Identifier = z.string().regex(/^[0-9a-f]{32}$/);

const Message = z.strictObject({ code: z.number().int(), message: z.string() });

/** A DNS record as the API returns it (the subset of types the fake serves). */
export const FakeDnsRecord = z.strictObject({
  id: Identifier,
  zone_id: Identifier,
  zone_name: z.string(),
  name: z.string(),
  type: z.enum(['A', 'AAAA', 'CNAME', 'TXT']),
  content: z.string(),
  proxiable: z.boolean(),
  proxied: z.boolean(),
  ttl: z.number().int(),
  settings: z.record(z.string(), z.unknown()),
  meta: z.record(z.string(), z.unknown()),
  comment: z.string().nullable(),
  tags: z.array(z.string()),
  created_on: z.iso.datetime(),
  modified_on: z.iso.datetime(),
});
export type FakeDnsRecord = z.infer<typeof FakeDnsRecord>;

const Envelope = z.strictObject({
  success: z.boolean(),
  errors: z.array(Message),
  messages: z.array(Message),
  result: z.union([FakeDnsRecord, z.array(FakeDnsRecord), z.null()]),
  result_info: z
    .strictObject({
      page: z.number().int(),
      per_page: z.number().int(),
      count: z.number().int(),
      total_count: z.number().int(),
      total_pages: z.number().int(),
    })
    .optional(),
});

const ListQuery = z.strictObject({
  name: z.string().optional(),
  type: z.enum(['A', 'AAAA', 'CNAME', 'TXT', 'MX', 'NS', 'SRV', 'CAA']).optional(),
  content: z.string().optional(),
  proxied: z.enum(['true', 'false']).optional(),
  match: z.enum(['any', 'all']).optional(),
  order: z.enum(['type', 'name', 'content', 'ttl', 'proxied']).optional(),
  direction: z.enum(['asc', 'desc']).optional(),
  page: z.coerce.number().int().min(1).optional(),
  per_page: z.coerce.number().int().min(5).max(5000).optional(),
});

const PatchBody = z.strictObject({
  name: z.string().min(1).max(255).optional(),
  type: z.enum(['A', 'AAAA', 'CNAME', 'TXT']).optional(),
  content: z.string().min(1).optional(),
  proxied: z.boolean().optional(),
  ttl: z.union([z.literal(1), z.number().int().min(30).max(86400)]).optional(),
  comment: z.string().max(100).nullable().optional(),
  tags: z.array(z.string()).optional(),
});

/** A request as the fake received it. */
export interface FakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization: string | undefined;
  body: unknown;
}

/** A canned answer for the next request(s), instead of the normal one. */
export interface FakeFailure {
  status: number;
  errors?: { code: number; message: string }[];
  retryAfter?: string;
  /** A body that is not the envelope at all (to test contract checks). */
  rawBody?: string;
}

export interface CloudflareDnsFakeOptions {
  token: string;
  zones: Record<string, { name: string; records: Partial<FakeDnsRecord>[] }>;
}

function envelope(status: number, body: z.input<typeof Envelope>): { status: number; body: string } {
  // the fake checks its own answers against the contract it promises
  return { status, body: JSON.stringify(Envelope.parse(body)) };
}

function errorAnswer(status: number, code: number, message: string) {
  return envelope(status, { success: false, errors: [{ code, message }], messages: [], result: null });
}

function validContent(type: FakeDnsRecord['type'], content: string): boolean {
  if (type === 'A') return net.isIPv4(content);
  if (type === 'AAAA') return net.isIPv6(content);
  if (type === 'CNAME')
    return /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/i.test(content);
  return true;
}

export class CloudflareDnsFake {
  readonly requests: FakeRequest[] = [];
  private readonly failures: FakeFailure[] = [];
  private hanging = false;
  private readonly sockets = new Set<net.Socket>();
  private readonly zones = new Map<string, { name: string; records: FakeDnsRecord[] }>();

  private constructor(
    private readonly server: http.Server,
    private readonly token: string,
    readonly baseUrl: string,
  ) {}

  static async start(options: CloudflareDnsFakeOptions): Promise<CloudflareDnsFake> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const fake = new CloudflareDnsFake(server, options.token, `http://127.0.0.1:${port}/client/v4`);
    for (const [zoneId, zone] of Object.entries(options.zones)) {
      Identifier.parse(zoneId);
      fake.zones.set(zoneId, {
        name: zone.name,
        records: zone.records.map((r) => fake.newRecord(zoneId, zone.name, r)),
      });
    }
    server.on('connection', (socket) => {
      fake.sockets.add(socket);
      socket.on('close', () => fake.sockets.delete(socket));
    });
    server.on('request', (req, res) => fake.handle(req, res));
    return fake;
  }

  /** The records of a zone as the fake holds them now. */
  records(zoneId: string): FakeDnsRecord[] {
    return structuredClone(this.zones.get(zoneId)?.records ?? []);
  }

  /** The next `times` requests get this answer instead of the normal one. */
  failNext(answer: FakeFailure, times = 1): void {
    for (let i = 0; i < times; i++) this.failures.push(answer);
  }

  /** Requests are accepted but never answered (until `close`). */
  hang(): void {
    this.hanging = true;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private newRecord(zoneId: string, zoneName: string, r: Partial<FakeDnsRecord>): FakeDnsRecord {
    const now = new Date().toISOString();
    return FakeDnsRecord.parse({
      id: randomBytes(16).toString('hex'),
      zone_id: zoneId,
      zone_name: zoneName,
      name: zoneName,
      type: 'A',
      content: '192.0.2.1',
      proxiable: true,
      proxied: false,
      ttl: 1,
      settings: {},
      meta: {},
      comment: null,
      tags: [],
      created_on: now,
      modified_on: now,
      ...r,
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      let badJson = false;
      if (text.length > 0) {
        try {
          body = JSON.parse(text);
        } catch {
          badJson = true;
        }
      }
      this.requests.push({
        method: req.method ?? '',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        authorization: req.headers.authorization,
        body,
      });
      if (this.hanging) return;
      const answer = this.answer(req, url, body, badJson);
      res.writeHead(answer.status, {
        'content-type': 'application/json',
        ...(answer.retryAfter ? { 'retry-after': answer.retryAfter } : {}),
      });
      res.end(answer.body);
    });
  }

  private answer(
    req: http.IncomingMessage,
    url: URL,
    body: unknown,
    badJson: boolean,
  ): { status: number; body: string; retryAfter?: string } {
    const injected = this.failures.shift();
    if (injected) {
      if (injected.rawBody !== undefined) return { status: injected.status, body: injected.rawBody };
      return {
        ...envelope(injected.status, {
          success: false,
          errors: injected.errors ?? [{ code: 10000, message: 'injected failure' }],
          messages: [],
          result: null,
        }),
        retryAfter: injected.retryAfter,
      };
    }
    const auth = req.headers.authorization;
    if (!auth || !/^Bearer \S+$/.test(auth)) return errorAnswer(400, 6003, 'Invalid request headers');
    if (auth !== `Bearer ${this.token}`) return errorAnswer(403, 9109, 'Invalid access token');

    const route = /^\/client\/v4\/zones\/([^/]+)\/dns_records(?:\/([^/]+))?$/.exec(url.pathname);
    if (!route) return errorAnswer(404, 7000, 'No route for that URI');
    const [, zoneId = '', recordId] = route;
    if (
      !Identifier.safeParse(zoneId).success ||
      (recordId !== undefined && !Identifier.safeParse(recordId).success)
    ) {
      return errorAnswer(
        400,
        7003,
        `Could not route to ${url.pathname}, perhaps your object identifier is invalid?`,
      );
    }
    const zone = this.zones.get(zoneId);
    if (!zone)
      return errorAnswer(
        404,
        7003,
        `Could not route to ${url.pathname}, perhaps your object identifier is invalid?`,
      );

    if (recordId === undefined) {
      if (req.method !== 'GET') return errorAnswer(405, 10405, 'Method not allowed for this route');
      const query = ListQuery.safeParse(Object.fromEntries(url.searchParams));
      if (!query.success)
        return errorAnswer(400, 9999, `Invalid query: ${query.error.issues[0]?.message ?? ''}`);
      const q = query.data;
      const matches = zone.records.filter(
        (r) =>
          (q.name === undefined || r.name.toLowerCase() === q.name.toLowerCase()) &&
          (q.type === undefined || r.type === q.type) &&
          (q.content === undefined || r.content === q.content) &&
          (q.proxied === undefined || String(r.proxied) === q.proxied),
      );
      const perPage = q.per_page ?? 100;
      const page = q.page ?? 1;
      const slice = matches.slice((page - 1) * perPage, page * perPage);
      return envelope(200, {
        success: true,
        errors: [],
        messages: [],
        result: slice,
        result_info: {
          page,
          per_page: perPage,
          count: slice.length,
          total_count: matches.length,
          total_pages: Math.max(1, Math.ceil(matches.length / perPage)),
        },
      });
    }

    const index = zone.records.findIndex((r) => r.id === recordId);
    const record = zone.records[index];
    if (!record) return errorAnswer(404, 81044, 'Record does not exist.');
    if (req.method === 'GET')
      return envelope(200, { success: true, errors: [], messages: [], result: record });
    if (req.method !== 'PATCH') return errorAnswer(405, 10405, 'Method not allowed for this route');
    if (badJson) return errorAnswer(400, 9207, 'Request body is invalid.');
    const patch = PatchBody.safeParse(body);
    if (!patch.success)
      return errorAnswer(400, 1004, `DNS Validation Error: ${patch.error.issues[0]?.message ?? ''}`);
    const next: FakeDnsRecord = { ...record, ...patch.data, modified_on: new Date().toISOString() };
    if (!validContent(next.type, next.content)) {
      return errorAnswer(400, 9005, `Content for ${next.type} record is invalid.`);
    }
    if (next.proxied && !next.proxiable) return errorAnswer(400, 9004, 'This record type cannot be proxied.');
    zone.records[index] = FakeDnsRecord.parse(next);
    return envelope(200, { success: true, errors: [], messages: [], result: zone.records[index] });
  }
}
