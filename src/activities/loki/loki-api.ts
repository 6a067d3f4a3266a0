/**
 * The Loki HTTP API as it is on the wire (`GET /loki/api/v1/query_range`). Loki publishes no machine-readable
 * description; this follows its reference documentation (`docs/sources/reference/loki-http-api.md` in
 * grafana/loki) and the server's own response types (`pkg/loghttp`):
 *
 * - `{"status":"success","data":{"resultType":"streams"|"matrix"|"vector"|"scalar","result":[...],"stats":{...}}}`
 * - a stream: `{"stream":{labels},"values":[["<ns epoch as string>","<line>", {structured metadata}?],...]}`
 * - a matrix series: `{"metric":{labels},"values":[[<unix seconds>,"<value string>"],...]}`
 */
import { z } from 'zod';

const LokiLabels = z.record(z.string(), z.string());

/** `[ns timestamp, line]`, with structured metadata as an optional third item (categorized labels). */
export const LokiEntry = z.tuple(
  [z.string().regex(/^\d+$/, 'must be a nanosecond epoch'), z.string()],
  z.unknown(),
);

export const LokiStream = z.object({ stream: LokiLabels, values: z.array(LokiEntry) });
export type LokiStream = z.infer<typeof LokiStream>;

const LokiValue = z
  .string()
  .regex(/^(NaN|[+-]Inf|[+-]?\d+(\.\d+)?([eE][+-]?\d+)?)$/, 'must be a float string');

export const LokiMatrixSeries = z.object({
  metric: LokiLabels,
  values: z.array(z.tuple([z.number(), LokiValue])),
});
export type LokiMatrixSeries = z.infer<typeof LokiMatrixSeries>;

export const LokiQueryResponse = z.object({
  status: z.literal('success'),
  data: z.discriminatedUnion('resultType', [
    z.object({ resultType: z.literal('streams'), result: z.array(LokiStream) }),
    z.object({ resultType: z.literal('matrix'), result: z.array(LokiMatrixSeries) }),
    z.object({
      resultType: z.literal('vector'),
      result: z.array(z.object({ metric: LokiLabels, value: z.tuple([z.number(), LokiValue]) })),
    }),
    z.object({ resultType: z.literal('scalar'), result: z.tuple([z.number(), LokiValue]) }),
  ]),
});
export type LokiQueryResponse = z.infer<typeof LokiQueryResponse>;

/** An ISO 8601 instant as Loki's most precise timestamp form, nanoseconds since the epoch. */
export function toNanoseconds(iso: string): bigint {
  return BigInt(Date.parse(iso)) * 1_000_000n;
}

/** Milliseconds as the shortest LogQL duration that says them exactly: `5m`, `90s`, `1500ms`. */
export function logqlDuration(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
