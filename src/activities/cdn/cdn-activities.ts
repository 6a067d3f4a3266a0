/**
 * CDN activity: invalidates cached content after a rollback (R3) or a release, through Cloudflare's
 * cache-purge API (`POST /zones/{zone_id}/purge_cache`; any CDN with the same contract fits).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { FailureType, failure } from '../../errors';
import { cancellationSignal, heartbeat, lastHeartbeat, parseActivityInput } from '../activity-support';
import type { Fetch } from '../http/http-client';
import { HttpClient } from '../http/http-client';

const HttpUrl = z.url({ protocol: /^https?$/ });

/** Input of `purgeCache`: exactly one of a list of URLs or `everything: true`. */
export const PurgeCacheInput = z
  .object({
    urls: z.array(HttpUrl).min(1).max(10_000).optional(),
    everything: z.literal(true).optional(),
  })
  .refine((i) => (i.urls === undefined) !== (i.everything === undefined), {
    message: 'give either urls or everything: true, not both and not neither',
  });
export type PurgeCacheInput = z.infer<typeof PurgeCacheInput>;

/** Result of `purgeCache`: what was purged and the CDN's purge ids, one per request. */
export const PurgeCacheResult = z.object({
  mode: z.enum(['files', 'everything']),
  urlCount: z.number().int(),
  purgeIds: z.array(z.string()),
  /** Requests this attempt sent (less than the batches when it resumed a previous attempt). */
  requests: z.number().int(),
});
export type PurgeCacheResult = z.infer<typeof PurgeCacheResult>;

/** The standard Cloudflare v4 envelope around `{ "id": "<purge id>" }`. */
const PurgeResponse = z.object({
  success: z.boolean(),
  errors: z.array(z.object({ code: z.number().optional(), message: z.string() }).loose()),
  messages: z.array(z.unknown()).optional(),
  result: z.object({ id: z.string() }).nullable(),
});

/** Heartbeat details: how far the URL batches got, for the next attempt to resume. */
const PurgeProgress = z.object({
  fingerprint: z.string(),
  batchesDone: z.number().int(),
  purgeIds: z.array(z.string()),
});
type PurgeProgress = z.infer<typeof PurgeProgress>;

export interface CdnActivitiesOptions {
  /** The API root; `https://api.cloudflare.com/client/v4` by default. */
  baseUrl?: string;
  zoneId: string;
  /** An API token with the Cache Purge permission on the zone; resolved by the worker, never logged. */
  apiToken: string;
  /** URLs per purge request; 30 by default (Cloudflare accepts up to 100 on current plans). */
  maxUrlsPerRequest?: number;
  fetch?: Fetch;
  timeoutMs?: number;
}

/**
 * Builds the CDN activities for one zone.
 *
 * Idempotent by nature: purging what is already purged changes nothing, so a retry may safely repeat any
 * request. Long URL lists go out in batches; after each batch the activity heartbeats its progress (with a
 * fingerprint of the URL list), and a retry resumes after the last batch that was confirmed instead of
 * starting over. Cancellation is followed between and during requests. Failures follow the HTTP table: a
 * token without Cache Purge on the zone (401/403) is `Unauthorized`; an unknown zone `NotFound`; a refused
 * body (400) `UpstreamRejected`; rate limiting (429, Cloudflare sends `Retry-After`) `RateLimited`; 5xx and
 * network errors retryable; an answer off the v4 envelope `ContractViolation`, and a 2xx answer with
 * `success: false` `UpstreamRejected` with the CDN's error messages.
 */
export function createCdnActivities(options: CdnActivitiesOptions) {
  if (!/^[A-Za-z0-9_-]+$/.test(options.zoneId)) throw new Error('CDN zone id must be a plain identifier');
  const batchSize = options.maxUrlsPerRequest ?? 30;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100)
    throw new Error('CDN maxUrlsPerRequest must be an integer from 1 to 100');
  const http = new HttpClient({
    system: 'CDN',
    baseUrl: options.baseUrl ?? 'https://api.cloudflare.com/client/v4',
    headers: { authorization: `Bearer ${options.apiToken}` },
    fetch: options.fetch,
    timeoutMs: options.timeoutMs,
  });
  const path = `/zones/${options.zoneId}/purge_cache`;

  async function purge(body: Record<string, unknown>): Promise<string> {
    const res = await http.request({
      method: 'POST',
      path,
      body,
      schema: PurgeResponse,
      signal: cancellationSignal(),
    });
    if (!res.body.success || !res.body.result) {
      const said = res.body.errors.map((e) => (e.code === undefined ? e.message : `${e.code}: ${e.message}`));
      throw failure(
        FailureType.UpstreamRejected,
        `CDN POST ${path} did not purge: ${said.join('; ') || 'no reason given'}`,
        {
          details: { system: 'CDN', operation: `POST ${path}`, errors: said },
        },
      );
    }
    return res.body.result.id;
  }

  return {
    /** Purges the given URLs (in batches, resumable) or the whole zone. */
    async purgeCache(input: PurgeCacheInput): Promise<PurgeCacheResult> {
      const { urls, everything } = parseActivityInput(PurgeCacheInput, input, 'purgeCache');
      if (everything) {
        const id = await purge({ purge_everything: true });
        return { mode: 'everything', urlCount: 0, purgeIds: [id], requests: 1 };
      }
      const unique = [...new Set(urls ?? [])];
      const fingerprint = createHash('sha256').update(JSON.stringify(unique)).digest('hex').slice(0, 16);
      const previous = PurgeProgress.safeParse(lastHeartbeat<PurgeProgress>());
      const resumed =
        previous.success && previous.data.fingerprint === fingerprint ? previous.data : undefined;
      const purgeIds = [...(resumed?.purgeIds ?? [])];
      let requests = 0;
      const batches = Math.ceil(unique.length / batchSize);
      for (let batch = resumed?.batchesDone ?? 0; batch < batches; batch += 1) {
        purgeIds.push(await purge({ files: unique.slice(batch * batchSize, (batch + 1) * batchSize) }));
        requests += 1;
        heartbeat({ fingerprint, batchesDone: batch + 1, purgeIds } satisfies PurgeProgress);
      }
      return { mode: 'files', urlCount: unique.length, purgeIds, requests };
    },
  };
}

export type CdnActivities = ReturnType<typeof createCdnActivities>;
