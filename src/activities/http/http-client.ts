/**
 * A small JSON-over-HTTP client for activities: one place that sends the request with its credential,
 * bounds it with a timeout and the activity's cancellation, classifies failures (classify-http-failure.ts)
 * and checks 2xx bodies against their zod schema (ContractViolation otherwise). Credentials live only in
 * the headers it is built with; no message it produces contains them.
 */
import type { z } from 'zod';
import { FailureType, failure } from '../../errors';
import { classifyHttpStatus, classifyNetworkError, parseRetryAfter } from './classify-http-failure';

export type Fetch = typeof fetch;

export interface HttpClientOptions {
  system: string;
  baseUrl: string;
  /** Headers sent with every request (the credential goes here). */
  headers?: Record<string, string>;
  fetch?: Fetch;
  /** Per-request timeout; 30 s by default. */
  timeoutMs?: number;
}

export interface HttpRequest<S extends z.ZodType> {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path below the base URL, e.g. `/api/v1/applications/abc`. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** JSON body, or a string/URLSearchParams sent as is. */
  body?: unknown;
  contentType?: string;
  /** Schema of a 2xx body; `undefined` when the body is ignored. */
  schema?: S;
  /** Cancels the request (pass the activity's cancellation signal). */
  signal?: AbortSignal;
  /** Extra statuses treated as success and returned without a body check (e.g. 404 for "absent"). */
  acceptStatuses?: number[];
}

export interface HttpResponse<T> {
  status: number;
  body: T;
  headers: Headers;
}

/** Extracts a short upstream message from an error body without echoing anything large. */
function upstreamMessage(text: string): string | undefined {
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const m = parsed['message'] ?? parsed['error'] ?? parsed['description'] ?? parsed['errors'];
    if (typeof m === 'string') return m.slice(0, 300);
    if (m !== undefined) return JSON.stringify(m).slice(0, 300);
  } catch {
    // not JSON
  }
  return text.slice(0, 200);
}

export class HttpClient {
  private readonly fetch: Fetch;
  private readonly baseUrl: string;

  constructor(private readonly options: HttpClientOptions) {
    this.fetch = options.fetch ?? fetch;
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
  }

  get system(): string {
    return this.options.system;
  }

  async request<S extends z.ZodType = z.ZodUnknown>(req: HttpRequest<S>): Promise<HttpResponse<z.infer<S>>> {
    const method = req.method ?? 'GET';
    const operation = `${method} ${req.path}`;
    const ctx = { system: this.options.system, operation };
    const url = new URL(this.baseUrl + req.path);
    for (const [k, v] of Object.entries(req.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: 'application/json', ...(this.options.headers ?? {}) };
    let body: string | URLSearchParams | undefined;
    if (req.body instanceof URLSearchParams || typeof req.body === 'string') {
      body = req.body;
      if (req.contentType) headers['content-type'] = req.contentType;
    } else if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers['content-type'] = req.contentType ?? 'application/json';
    }
    const timeout = AbortSignal.timeout(this.options.timeoutMs ?? 30_000);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    let response: Response;
    try {
      response = await this.fetch(url, { method, headers, body, signal });
    } catch (err) {
      if (req.signal?.aborted) throw err;
      throw classifyNetworkError(err, ctx);
    }
    const text = await response.text();
    if (req.acceptStatuses?.includes(response.status)) {
      return { status: response.status, body: undefined as z.infer<S>, headers: response.headers };
    }
    if (response.status < 200 || response.status >= 300) {
      throw classifyHttpStatus(response.status, ctx, {
        retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
        upstreamMessage: upstreamMessage(text),
      });
    }
    if (!req.schema)
      return { status: response.status, body: undefined as z.infer<S>, headers: response.headers };
    let json: unknown;
    try {
      json = text.length ? JSON.parse(text) : undefined;
    } catch {
      throw failure(
        FailureType.ContractViolation,
        `${this.options.system} ${operation} answered ${response.status} with a body that is not JSON`,
        {
          details: { system: this.options.system, operation, status: response.status },
        },
      );
    }
    const parsed = req.schema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .slice(0, 5)
        .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
      throw failure(
        FailureType.ContractViolation,
        `${this.options.system} ${operation} answered ${response.status} with a body that breaks its contract: ${issues.join('; ')}`,
        { details: { system: this.options.system, operation, status: response.status, issues } },
      );
    }
    return { status: response.status, body: parsed.data, headers: response.headers };
  }
}
