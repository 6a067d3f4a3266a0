/**
 * The Prometheus HTTP API as it is on the wire, after the official OpenAPI description
 * (`/api/v1/openapi.yaml`, components `QueryOutputBody`, `QueryRangeOutputBody`, `QueryData`, `FloatSample`,
 * `HistogramSample`, `FloatSeries`, `HistogramSeries`, `HistogramValue`), and the conversion of its string
 * sample values into numbers.
 *
 * Two deliberate differences from the document: objects are not closed (`additionalProperties: false` in
 * the spec), so a newer server that adds a field does not break the release pipeline; and a matrix series
 * may carry both `values` and `histograms`, which servers do send for series that mix float and native
 * histogram samples although the spec's `anyOf` of two closed objects cannot express it.
 */
import { z } from 'zod';

/**
 * A sample value as Prometheus formats it: a decimal float, `NaN`, `+Inf` or `-Inf`. Anything else breaks
 * the contract.
 */
export const PromSampleValue = z
  .string()
  .regex(/^(NaN|[+-]Inf|[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)$/, 'must be a Prometheus float string');
export type PromSampleValue = z.infer<typeof PromSampleValue>;

/** `[unixSeconds, "value"]`: the spec's two-item array of timestamp and string value. */
export const PromFloatPoint = z.tuple([z.number(), PromSampleValue]);
export type PromFloatPoint = z.infer<typeof PromFloatPoint>;

/** Label set (`Labels`). */
export const PromLabels = z.record(z.string(), z.string());
export type PromLabels = z.infer<typeof PromLabels>;

/** `HistogramValue`: a native histogram; counts stay strings as on the wire. */
export const PromHistogramValue = z.object({
  count: z.string(),
  sum: z.string(),
  buckets: z.array(z.array(z.union([z.number(), z.string()]))).optional(),
});
export type PromHistogramValue = z.infer<typeof PromHistogramValue>;

export const PromHistogramPoint = z.tuple([z.number(), PromHistogramValue]);

/** An instant-vector element: `FloatSample` (`value`) or `HistogramSample` (`histogram`). */
export const PromVectorSample = z
  .object({
    metric: PromLabels,
    value: PromFloatPoint.optional(),
    histogram: PromHistogramPoint.optional(),
  })
  .refine((s) => (s.value === undefined) !== (s.histogram === undefined), {
    message: 'a sample has exactly one of value and histogram',
  });
export type PromVectorSample = z.infer<typeof PromVectorSample>;

/** A range-vector element: `FloatSeries` (`values`) and/or `HistogramSeries` (`histograms`). */
export const PromSeries = z
  .object({
    metric: PromLabels,
    values: z.array(PromFloatPoint).optional(),
    histograms: z.array(PromHistogramPoint).optional(),
  })
  .refine((s) => s.values !== undefined || s.histograms !== undefined, {
    message: 'a series has values or histograms',
  });
export type PromSeries = z.infer<typeof PromSeries>;

/** `QueryData`: the result, shaped by `resultType`. */
export const PromQueryData = z.discriminatedUnion('resultType', [
  z.object({ resultType: z.literal('vector'), result: z.array(PromVectorSample) }),
  z.object({ resultType: z.literal('matrix'), result: z.array(PromSeries) }),
  z.object({ resultType: z.literal('scalar'), result: PromFloatPoint }),
  z.object({ resultType: z.literal('string'), result: z.tuple([z.number(), z.string()]) }),
]);
export type PromQueryData = z.infer<typeof PromQueryData>;

/**
 * `QueryOutputBody` / `QueryRangeOutputBody` of a 2xx answer. The spec's enum admits `status: "error"`
 * but a 2xx answer with it carries no data, so it is a contract violation here.
 */
export const PromQueryResponse = z.object({
  status: z.literal('success'),
  data: PromQueryData,
  warnings: z.array(z.string()).optional(),
  infos: z.array(z.string()).optional(),
});
export type PromQueryResponse = z.infer<typeof PromQueryResponse>;

/**
 * A sample value as a JSON-safe number: `NaN`, `+Inf` and `-Inf` become `null` (JSON, and so Temporal's
 * payloads, cannot carry them); the caller keeps the raw string to tell them apart.
 */
export function sampleNumber(raw: PromSampleValue): number | null {
  if (raw === 'NaN' || raw === '+Inf' || raw === '-Inf') return null;
  const n = Number(raw);
  return Number.isFinite(n) ? n : null;
}

/** A PromQL double-quoted string literal holding `value` (JSON escapes are valid PromQL escapes). */
export function promqlString(value: string): string {
  return JSON.stringify(value);
}
