/**
 * Grafana activity: marks a release event (deployment, promotion, rollback) as an annotation, so that the
 * dashboards show it next to the metrics it explains (L2: "Grafana & Telegram alerts active").
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { cancellationSignal, idempotencyKey, parseActivityInput } from '../activity-support';
import type { Fetch } from '../http/http-client';
import { HttpClient } from '../http/http-client';

const IsoTime = z.iso.datetime({ offset: true });

/** Input of `annotate`. Without `dashboardUid` it is an organization annotation, shown by tag. */
export const AnnotateInput = z
  .object({
    text: z.string().min(1).max(10_000),
    tags: z.array(z.string().min(1).max(100)).max(20).default([]),
    /** When it happened (ISO 8601); now when absent. */
    time: IsoTime.optional(),
    /** End of a region annotation (ISO 8601). */
    timeEnd: IsoTime.optional(),
    dashboardUid: z.string().min(1).optional(),
  })
  .refine((i) => !i.time || !i.timeEnd || Date.parse(i.timeEnd) >= Date.parse(i.time), {
    message: 'timeEnd must not be before time',
  });
export type AnnotateInput = z.input<typeof AnnotateInput>;

/** Result of `annotate`: the annotation's id, and whether this call created it or found it from an earlier attempt. */
export const AnnotateResult = z.object({
  annotationId: z.number().int(),
  created: z.boolean(),
  /** The tag that identifies this activity's annotation (see the idempotency note on the factory). */
  idempotencyTag: z.string(),
});
export type AnnotateResult = z.infer<typeof AnnotateResult>;

/** `POST /api/annotations` → `{"message":"Annotation added","id":<int>}`. */
const CreatedAnnotation = z.object({ id: z.number().int(), message: z.string().optional() });

/** One item of `GET /api/annotations`; only the fields this activity reads are required. */
const FoundAnnotation = z.object({
  id: z.number().int(),
  tags: z.array(z.string()).nullable().optional(),
  text: z.string().optional(),
  time: z.number().optional(),
  dashboardUID: z.string().nullable().optional(),
});
const FoundAnnotations = z.array(FoundAnnotation);

export interface GrafanaActivitiesOptions {
  /** The Grafana root, e.g. `https://grafana.acehcommerce.id` (the legacy HTTP API lives below `/api`). */
  baseUrl: string;
  /** A service-account token with `annotations:read` and `annotations:create`; resolved by the worker. */
  token: string;
  /** Sent as `X-Grafana-Org-Id` when the token may act in several organizations. */
  orgId?: number;
  fetch?: Fetch;
  timeoutMs?: number;
}

/**
 * The tag that marks the annotation of one activity: a digest of `<workflowId>/<activityId>`, because
 * Grafana keeps tags short and splits them at `:` into key and value.
 */
export function annotationIdempotencyTag(key: string): string {
  return `aceh-release-op:${createHash('sha256').update(key).digest('hex').slice(0, 32)}`;
}

/**
 * Builds the Grafana activities.
 *
 * Idempotent by check-then-act: the annotation carries a tag derived from the workflow and activity ids,
 * `annotate` first searches for an annotation with that tag and returns it when an earlier attempt made it,
 * and creates one only otherwise. Temporal runs one attempt of an activity at a time, so the check and the
 * act do not race with each other (an attempt that timed out while its request was still in flight could,
 * in theory, add a second copy: harmless for an annotation). Failures follow the HTTP table: a bad or
 * under-privileged token (401/403) is `Unauthorized`; an unknown dashboard and other refusals are
 * non-retryable; 429, 5xx and network errors retryable; a body off the documented shape `ContractViolation`.
 */
export function createGrafanaActivities(options: GrafanaActivitiesOptions) {
  const headers: Record<string, string> = { authorization: `Bearer ${options.token}` };
  if (options.orgId !== undefined) headers['x-grafana-org-id'] = String(options.orgId);
  const http = new HttpClient({
    system: 'Grafana',
    baseUrl: options.baseUrl,
    headers,
    fetch: options.fetch,
    timeoutMs: options.timeoutMs,
  });

  return {
    /** Adds an annotation (once per activity, however often it is retried). */
    async annotate(input: AnnotateInput): Promise<AnnotateResult> {
      const { text, tags, time, timeEnd, dashboardUid } = parseActivityInput(
        AnnotateInput,
        input,
        'annotate',
      );
      const idempotencyTag = annotationIdempotencyTag(idempotencyKey());
      const signal = cancellationSignal();
      const existing = await http.request({
        path: '/api/annotations',
        query: { tags: idempotencyTag, type: 'annotation', limit: 1, dashboardUID: dashboardUid },
        schema: FoundAnnotations,
        signal,
      });
      const found = existing.body.find((a) => a.tags?.includes(idempotencyTag));
      if (found) return { annotationId: found.id, created: false, idempotencyTag };
      const at = time ? Date.parse(time) : Date.now();
      const created = await http.request({
        method: 'POST',
        path: '/api/annotations',
        body: {
          text,
          tags: [...new Set([...tags, idempotencyTag])],
          time: at,
          ...(timeEnd ? { timeEnd: Date.parse(timeEnd) } : {}),
          ...(dashboardUid ? { dashboardUID: dashboardUid } : {}),
        },
        schema: CreatedAnnotation,
        signal,
      });
      return { annotationId: created.body.id, created: true, idempotencyTag };
    },
  };
}

export type GrafanaActivities = ReturnType<typeof createGrafanaActivities>;
