/**
 * Traffic provider that switches a DNS record between the blue and the green address, over the
 * Cloudflare v4 API (`GET /zones/{zone_id}/dns_records?name=&type=`, `PATCH
 * /zones/{zone_id}/dns_records/{id}` with the new `content`). A PATCH changes only the fields it sends,
 * so `proxied`, `ttl`, comment and tags stay as they are. Every answer is the v4 envelope `{success,
 * errors, messages, result}`.
 *
 * DNS moves users as their resolvers' caches expire (the record's TTL; near-instant when proxied), not
 * request by request: it can switch, not split or mirror.
 */
import { z } from 'zod';
import { FailureType, failure } from '../../errors';
import { cancellationSignal } from '../activity-support';
import { HttpClient, type Fetch } from '../http/http-client';
import {
  GetTrafficStateInput,
  MirrorTrafficInput,
  RestoreTrafficStateInput,
  SetCanaryWeightsInput,
  StopMirroringInput,
  SwitchTrafficInput,
  activeColour,
  expectSnapshot,
  parseTrafficInput,
  unsupportedByProvider,
  type TrafficChange,
  type TrafficProvider,
  type TrafficState,
} from './traffic-provider';

/** How a service maps onto one DNS record. */
export interface DnsServiceMapping {
  /** The record's full name, e.g. `acehcommerce.id`. */
  record: string;
  /** Record type; `A` by default. */
  type?: 'A' | 'AAAA' | 'CNAME';
  /** Logical target -> record content (an address, or a host name for CNAME): `{ blue: ..., green: ... }`. */
  targets: Record<string, string>;
}

export interface CloudflareDnsTrafficOptions {
  /** The API token (already resolved by the worker), with DNS edit permission on the zone. */
  token: string;
  zoneId: string;
  services: Record<string, DnsServiceMapping>;
  /** `https://api.cloudflare.com/client/v4` by default. */
  baseUrl?: string;
  fetch?: Fetch;
  timeoutMs?: number;
}

const CloudflareMessage = z.looseObject({ code: z.number().int(), message: z.string() });

/** The v4 envelope around every answer. */
const Envelope = z.looseObject({
  success: z.boolean(),
  errors: z.array(CloudflareMessage),
  messages: z.array(z.unknown()),
  result: z.unknown(),
});

/** The fields of a DNS record this adapter reads (the API returns more). */
export const CloudflareDnsRecord = z.looseObject({
  id: z.string().min(1),
  name: z.string(),
  type: z.string(),
  content: z.string(),
  proxied: z.boolean().optional(),
  ttl: z.number().int(),
});
export type CloudflareDnsRecord = z.infer<typeof CloudflareDnsRecord>;

// Cloudflare error codes of a `success: false` answer that came with a 2xx status.
const UNAUTHORIZED_CODES = new Set([9103, 9106, 9109, 10000, 10001]);
const NOT_FOUND_CODES = new Set([7003, 81044]);
const RATE_LIMITED_CODES = new Set([971, 10013]);

const SYSTEM = 'Cloudflare';

/**
 * Builds the Cloudflare DNS traffic activities.
 *
 * - `switchTraffic` points the service's record at the colour's configured address.
 * - `setCanaryWeights` and `mirrorTraffic` fail with `PolicyViolation`: one DNS record cannot split or
 *   copy requests (that takes Cloudflare Load Balancing, or the HAProxy/Traefik providers).
 *   `stopMirroring` is a successful no-op.
 *
 * Idempotent by check-then-act: it looks the record up by name and type, sends the PATCH only when the
 * content differs (`changed: false` otherwise), and returns the content it found as `previous`;
 * `restoreTrafficState` PATCHes that content back. The record must exist exactly once (`NotFound` when
 * absent, `PolicyViolation` when several records share the name).
 *
 * Failures follow the HTTP table (401/403 `Unauthorized`, 404 `NotFound`, 429 `RateLimited` after
 * Retry-After, 5xx and network `UpstreamUnavailable`, other 4xx `UpstreamRejected`, a body that breaks the
 * envelope `ContractViolation`); a 2xx envelope with `success: false` is classified by its Cloudflare
 * error codes. The token goes only into the Authorization header, never into a message.
 */
export function createCloudflareDnsTrafficActivities(options: CloudflareDnsTrafficOptions): TrafficProvider {
  const http = new HttpClient({
    system: SYSTEM,
    baseUrl: options.baseUrl ?? 'https://api.cloudflare.com/client/v4',
    headers: { authorization: `Bearer ${options.token}` },
    fetch: options.fetch,
    timeoutMs: options.timeoutMs,
  });
  const recordsPath = `/zones/${encodeURIComponent(options.zoneId)}/dns_records`;

  /** One v4 call: the envelope checked, `success: false` classified, the result checked against `schema`. */
  const call = async <S extends z.ZodType>(
    request: {
      method: 'GET' | 'PATCH';
      path: string;
      query?: Record<string, string | number>;
      body?: unknown;
    },
    schema: S,
  ): Promise<z.infer<S>> => {
    const operation = `${request.method} ${request.path}`;
    const { body: envelope } = await http.request({
      ...request,
      schema: Envelope,
      signal: cancellationSignal(),
    });
    if (!envelope.success) {
      const codes = envelope.errors.map((e) => e.code);
      const said =
        envelope.errors.map((e) => `${e.code} ${e.message}`.slice(0, 200)).join('; ') || 'no errors given';
      const details = { system: SYSTEM, operation, codes };
      const type = codes.some((c) => UNAUTHORIZED_CODES.has(c))
        ? FailureType.Unauthorized
        : codes.some((c) => NOT_FOUND_CODES.has(c))
          ? FailureType.NotFound
          : codes.some((c) => RATE_LIMITED_CODES.has(c))
            ? FailureType.RateLimited
            : FailureType.UpstreamRejected;
      throw failure(type, `${SYSTEM} ${operation} answered success: false (${said})`, { details });
    }
    const parsed = schema.safeParse(envelope.result);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .slice(0, 5)
        .map((i) => `${i.path.join('.') || '(result)'}: ${i.message}`);
      throw failure(
        FailureType.ContractViolation,
        `${SYSTEM} ${operation} answered a result that breaks its contract: ${issues.join('; ')}`,
        { details: { system: SYSTEM, operation, issues } },
      );
    }
    return parsed.data;
  };

  const mappingOf = (service: string): Required<DnsServiceMapping> => {
    const mapping = options.services[service];
    if (!mapping) {
      throw failure(
        FailureType.InvalidInput,
        `service ${service} has no DNS record configured for the Cloudflare traffic provider; configured: ${Object.keys(options.services).join(', ') || 'none'}`,
        { details: { service } },
      );
    }
    return { type: 'A', ...mapping };
  };

  const sameContent = (a: string, b: string) =>
    a.toLowerCase().replace(/\.$/, '') === b.toLowerCase().replace(/\.$/, '');

  const findRecord = async (service: string) => {
    const mapping = mappingOf(service);
    const records = await call(
      {
        method: 'GET',
        path: recordsPath,
        query: { name: mapping.record, type: mapping.type, per_page: 100 },
      },
      z.array(CloudflareDnsRecord),
    );
    const matching = records.filter((r) => sameContent(r.name, mapping.record) && r.type === mapping.type);
    if (matching.length === 0) {
      throw failure(
        FailureType.NotFound,
        `${SYSTEM} zone has no ${mapping.type} record named ${mapping.record}; create it before switching traffic`,
        { details: { system: SYSTEM, record: mapping.record, type: mapping.type } },
      );
    }
    const [record, ...others] = matching;
    if (!record || others.length > 0) {
      throw failure(
        FailureType.PolicyViolation,
        `${SYSTEM} zone has ${matching.length} ${mapping.type} records named ${mapping.record}; a DNS switch needs exactly one`,
        { details: { system: SYSTEM, record: mapping.record, type: mapping.type, count: matching.length } },
      );
    }
    return { mapping, record };
  };

  const toState = (service: string, mapping: Required<DnsServiceMapping>, record: CloudflareDnsRecord) => {
    const entries = Object.entries(mapping.targets).map(([target, content]) => ({
      target,
      percent: sameContent(content, record.content) ? 100 : 0,
    }));
    const weights = entries.some((e) => e.percent === 100)
      ? entries
      : [...entries, { target: record.content, percent: 100 }];
    const state: TrafficState = {
      service,
      weights,
      active: activeColour(weights),
      mirrors: [],
      snapshot: { provider: 'dns', recordId: record.id, recordName: record.name, content: record.content },
    };
    return state;
  };

  const pointAt = async (service: string, content: string): Promise<TrafficChange> => {
    const { mapping, record } = await findRecord(service);
    const previous = toState(service, mapping, record);
    if (sameContent(record.content, content)) return { service, changed: false, previous, current: previous };
    const updated = await call(
      { method: 'PATCH', path: `${recordsPath}/${encodeURIComponent(record.id)}`, body: { content } },
      CloudflareDnsRecord,
    );
    return { service, changed: true, previous, current: toState(service, mapping, updated) };
  };

  return {
    async switchTraffic(raw) {
      const input = parseTrafficInput(SwitchTrafficInput, raw, 'switchTraffic');
      const content = mappingOf(input.service).targets[input.to];
      if (!content) {
        throw failure(
          FailureType.InvalidInput,
          `service ${input.service} has no ${input.to} address configured for the Cloudflare traffic provider`,
          { details: { service: input.service, to: input.to } },
        );
      }
      return pointAt(input.service, content);
    },

    setCanaryWeights(raw) {
      parseTrafficInput(SetCanaryWeightsInput, raw, 'setCanaryWeights');
      return Promise.reject(
        unsupportedByProvider(
          'Cloudflare DNS',
          'setCanaryWeights',
          'one DNS record points at one address; use the HAProxy or Traefik provider for canary (S3) releases',
        ),
      );
    },

    mirrorTraffic(raw) {
      parseTrafficInput(MirrorTrafficInput, raw, 'mirrorTraffic');
      return Promise.reject(
        unsupportedByProvider(
          'Cloudflare DNS',
          'mirrorTraffic',
          'DNS cannot copy requests; use the Traefik provider for shadow (S4) releases',
        ),
      );
    },

    async stopMirroring(raw) {
      const input = parseTrafficInput(StopMirroringInput, raw, 'stopMirroring');
      const { mapping, record } = await findRecord(input.service);
      const state = toState(input.service, mapping, record);
      return { service: input.service, changed: false, previous: state, current: state };
    },

    async getTrafficState(raw) {
      const input = parseTrafficInput(GetTrafficStateInput, raw, 'getTrafficState');
      const { mapping, record } = await findRecord(input.service);
      return toState(input.service, mapping, record);
    },

    async restoreTrafficState(raw) {
      const input = parseTrafficInput(RestoreTrafficStateInput, raw, 'restoreTrafficState');
      const snapshot = expectSnapshot(input, 'dns');
      const mapping = mappingOf(input.service);
      if (!sameContent(snapshot.recordName, mapping.record)) {
        throw failure(
          FailureType.InvalidInput,
          `restoreTrafficState: the snapshot is of record ${snapshot.recordName}, but service ${input.service} is ${mapping.record}`,
          { details: { service: input.service } },
        );
      }
      return pointAt(input.service, snapshot.content);
    },
  };
}
