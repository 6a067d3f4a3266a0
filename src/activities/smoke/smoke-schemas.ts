/**
 * Inputs and results of the post-deployment smoke activities (M1): HTTP checks of the deployed endpoints
 * and a configured test command such as `pnpm run test:smoke`.
 */
import { z } from 'zod';

export const EndpointCheck = z.strictObject({
  /** A label for reports; the URL when absent. */
  name: z.string().min(1).max(200).optional(),
  url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  method: z.enum(['GET', 'HEAD']).default('GET'),
  expectStatus: z.number().int().min(100).max(599).default(200),
  /** The check fails when the answer (body included) takes longer. */
  maxLatencyMs: z.number().int().positive().optional(),
  /** The check fails unless the body (its first megabyte) contains this text. */
  bodyIncludes: z.string().min(1).optional(),
  /** Follow redirects (default) or judge the first answer. */
  followRedirects: z.boolean().default(true),
  /** Give up on the request after this long; 10 s by default. */
  timeoutMs: z.number().int().positive().max(300_000).optional(),
});
export type EndpointCheck = z.input<typeof EndpointCheck>;

export const CheckEndpointsInput = z.strictObject({
  checks: z.array(EndpointCheck).min(1).max(200),
});
export type CheckEndpointsInput = z.input<typeof CheckEndpointsInput>;

export const EndpointCheckResult = z.object({
  name: z.string(),
  url: z.string(),
  ok: z.boolean(),
  /** Null when no answer was received. */
  status: z.number().nullable(),
  latencyMs: z.number(),
  statusOk: z.boolean(),
  latencyOk: z.boolean(),
  /** Null when no marker was asked for. */
  markerFound: z.boolean().nullable(),
  /** Why the check failed, in words; absent when it passed. */
  problem: z.string().optional(),
});
export type EndpointCheckResult = z.infer<typeof EndpointCheckResult>;

export const CheckEndpointsResult = z.object({
  passed: z.boolean(),
  results: z.array(EndpointCheckResult),
});
export type CheckEndpointsResult = z.infer<typeof CheckEndpointsResult>;

export const RunCommandInput = z.strictObject({
  /** argv: the executable and its arguments; no shell is involved. */
  command: z.array(z.string()).min(1).max(100),
  cwd: z.string().min(1),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .max(6 * 60 * 60 * 1000),
  /** Extra non-secret environment (secrets come from the worker's configuration). */
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).optional(),
});
export type RunCommandInput = z.infer<typeof RunCommandInput>;

export const RunCommandResult = z.object({
  command: z.array(z.string()),
  /** Null when the process was killed by a signal. */
  exitCode: z.number().nullable(),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  /** Exit code 0 within the time limit. */
  passed: z.boolean(),
  durationMs: z.number(),
  /** The last bytes of each stream (bounded), secrets redacted. */
  stdoutTail: z.string(),
  stderrTail: z.string(),
  stdoutBytes: z.number(),
  stderrBytes: z.number(),
});
export type RunCommandResult = z.infer<typeof RunCommandResult>;

export const RunCommandProgress = z.object({
  pid: z.number(),
  elapsedMs: z.number(),
  stdoutTail: z.string(),
  stderrTail: z.string(),
});
export type RunCommandProgress = z.infer<typeof RunCommandProgress>;
