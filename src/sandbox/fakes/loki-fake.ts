/**
 * A Loki fake for the activity tests: `GET /loki/api/v1/query_range` over in-memory log lines. Loki
 * publishes no machine-readable description; the contract here is its HTTP API reference
 * (`docs/sources/reference/loki-http-api.md` in grafana/loki) and the parameter handling of its server
 * (`pkg/loghttp`), as summarised in the project's API contract notes (Loki section):
 *
 * - parameters `query` (required), `start`, `end` (ns epoch; float seconds; RFC3339; `end` exclusive for
 *   log queries), `since`, `limit` (positive; default 100; at most `max_entries_limit_per_query`), `step`
 *   (float seconds or a duration; positive; at most 11,000 points), `interval`, `direction`
 *   (`forward`/`backward`, default backward); `end` before `start` is refused;
 * - multi-tenant Loki wants `X-Scope-OrgID` (401 `no org id` without it); a tenant sees only its own logs;
 * - answers `{"status":"success","data":{"resultType":"streams"|"matrix","result":[...],"stats":{...}}}`,
 *   stream entries `["<ns epoch string>","<line>"]`, matrix points `[<unix seconds>,"<value>"]`; errors are
 *   plain text with status 400.
 *
 * LogQL is parsed for the subset the activities send: a stream selector with `=`, `!=`, `=~`, `!~`
 * matchers; line filters `|=`, `!=`, `|~`, `!~` with "double-quoted" or `raw` strings; and
 * `count_over_time(<log query> [<range>])`, optionally inside `sum(...)`. Anything else is answered with a
 * 400 parse error, as Loki answers LogQL it cannot parse. Every 4xx caused by the request is also recorded
 * as a contract violation.
 */
import type { FakeResponse, RecordedRequest } from './scripted-http-server';
import { ScriptedHttpServer } from './scripted-http-server';

type MatchOp = '=' | '!=' | '=~' | '!~';
type FilterOp = '|=' | '!=' | '|~' | '!~';
interface LogQuery {
  matchers: { name: string; op: MatchOp; value: string; regex?: RegExp }[];
  filters: { op: FilterOp; value: string; regex?: RegExp }[];
}
type Query =
  { kind: 'log'; log: LogQuery } | { kind: 'metric'; log: LogQuery; rangeNs: bigint; sum: boolean };

class LogqlError extends Error {}

const DURATION_UNITS: Record<string, bigint> = {
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
  d: 86_400_000_000_000n,
  w: 604_800_000_000_000n,
  y: 31_536_000_000_000_000n,
};

/** A Prometheus-style duration (`5m`, `1h30m`, `300000ms`) in nanoseconds, or undefined. */
function parseDuration(text: string): bigint | undefined {
  if (!/^(\d+(ms|s|m|h|d|w|y))+$/.test(text)) return undefined;
  let total = 0n;
  for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g))
    total += BigInt(n ?? 0) * (DURATION_UNITS[unit ?? 's'] ?? 0n);
  return total;
}

/** A Go RE2 pattern as a JavaScript RegExp; a leading `(?i)` becomes the `i` flag. */
function goRegex(pattern: string, anchored: boolean): RegExp {
  let source = pattern;
  let flags = '';
  if (source.startsWith('(?i)')) {
    source = source.slice(4);
    flags = 'i';
  }
  if (source.includes('(?')) throw new LogqlError(`the fake does not support the inline flags in ${pattern}`);
  try {
    return new RegExp(anchored ? `^(?:${source})$` : source, flags);
  } catch {
    throw new LogqlError(`error parsing regexp: ${pattern}`);
  }
}

class LogqlParser {
  private pos = 0;
  constructor(private readonly text: string) {}

  parse(): Query {
    this.ws();
    let query: Query;
    if (this.text.startsWith('sum', this.pos) || this.text.startsWith('count_over_time', this.pos)) {
      const sum = this.eatWord('sum');
      if (sum) this.expect('(');
      if (!this.eatWord('count_over_time')) this.fail('expected count_over_time');
      this.expect('(');
      const log = this.logQuery();
      this.expect('[');
      const end = this.text.indexOf(']', this.pos);
      if (end < 0) this.fail('unclosed range');
      const rangeNs = parseDuration(this.text.slice(this.pos, end).trim());
      if (rangeNs === undefined || rangeNs === 0n) this.fail('invalid range duration');
      this.pos = end + 1;
      this.expect(')');
      if (sum) this.expect(')');
      query = { kind: 'metric', log, rangeNs: rangeNs ?? 0n, sum };
    } else {
      query = { kind: 'log', log: this.logQuery() };
    }
    this.ws();
    if (this.pos !== this.text.length)
      this.fail(`unexpected ${JSON.stringify(this.text.slice(this.pos, this.pos + 10))}`);
    return query;
  }

  private logQuery(): LogQuery {
    this.expect('{');
    const matchers: LogQuery['matchers'] = [];
    do {
      this.ws();
      const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(this.text.slice(this.pos))?.[0];
      if (!name) this.fail('expected a label name');
      this.pos += name?.length ?? 0;
      this.ws();
      const op = (['=~', '!~', '!=', '='] as const).find((o) => this.text.startsWith(o, this.pos));
      if (!op) this.fail('expected a label matcher operator');
      this.pos += op?.length ?? 0;
      const value = this.string();
      const regex = op === '=~' || op === '!~' ? goRegex(value, true) : undefined;
      matchers.push({ name: name ?? '', op: op ?? '=', value, regex });
      this.ws();
    } while (this.eat(','));
    this.expect('}');
    const positive = matchers.some(
      (m) =>
        (m.op === '=' && m.value !== '') || (m.op === '=~' && m.regex !== undefined && !m.regex.test('')),
    );
    if (!positive) {
      throw new LogqlError(
        'queries require at least one regexp or equality matcher that does not have an empty-compatible value',
      );
    }
    const filters: LogQuery['filters'] = [];
    for (;;) {
      this.ws();
      const op = (['|=', '!=', '|~', '!~'] as const).find((o) => this.text.startsWith(o, this.pos));
      if (!op) break;
      this.pos += op.length;
      const value = this.string();
      filters.push({ op, value, regex: op === '|~' || op === '!~' ? goRegex(value, false) : undefined });
    }
    return { matchers, filters };
  }

  private string(): string {
    this.ws();
    const quote = this.text[this.pos];
    if (quote === '`') {
      const end = this.text.indexOf('`', this.pos + 1);
      if (end < 0) this.fail('unterminated raw string');
      const value = this.text.slice(this.pos + 1, end);
      this.pos = end + 1;
      return value;
    }
    if (quote !== '"') this.fail('expected a string');
    let i = this.pos + 1;
    while (i < this.text.length && this.text[i] !== '"') i += this.text[i] === '\\' ? 2 : 1;
    if (i >= this.text.length) this.fail('unterminated string');
    const literal = this.text.slice(this.pos, i + 1);
    this.pos = i + 1;
    try {
      return JSON.parse(literal) as string;
    } catch {
      return this.fail(`invalid escape in ${literal}`);
    }
  }

  private ws(): void {
    while (/\s/.test(this.text[this.pos] ?? '')) this.pos += 1;
  }

  private eat(token: string): boolean {
    this.ws();
    if (!this.text.startsWith(token, this.pos)) return false;
    this.pos += token.length;
    return true;
  }

  private eatWord(word: string): boolean {
    this.ws();
    if (!this.text.startsWith(word, this.pos) || /[a-zA-Z0-9_]/.test(this.text[this.pos + word.length] ?? ''))
      return false;
    this.pos += word.length;
    return true;
  }

  private expect(token: string): void {
    if (!this.eat(token)) this.fail(`expected ${token}`);
  }

  private fail(what: string): never {
    throw new LogqlError(`parse error at line 1, col ${this.pos + 1}: syntax error: ${what}`);
  }
}

export function parseLogql(text: string): Query {
  return new LogqlParser(text).parse();
}

/** Loki's timestamp forms: float seconds (with a dot), integer seconds (up to 10 digits), ns, RFC3339. */
function parseTimestamp(value: string): bigint | undefined {
  if (value.includes('.') && /^\d+\.\d*$/.test(value)) {
    const [s = '0', frac = ''] = value.split('.');
    return BigInt(s) * 1_000_000_000n + BigInt((frac + '000000000').slice(0, 9));
  }
  if (/^-?\d+$/.test(value)) return value.length <= 10 ? BigInt(value) * 1_000_000_000n : BigInt(value);
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(value)) {
    const ms = Date.parse(value);
    if (Number.isNaN(ms)) return undefined;
    const frac = /\.(\d+)/.exec(value)?.[1] ?? '';
    return BigInt(Math.floor(ms / 1000)) * 1_000_000_000n + BigInt((frac + '000000000').slice(0, 9));
  }
  return undefined;
}

interface Entry {
  ts: bigint;
  line: string;
}

export interface LokiFakeOptions {
  /** When set, Loki runs multi-tenant: requests need `X-Scope-OrgID`, and the logs belong to this tenant. */
  tenant?: string;
  /** When set, a proxy in front demands `Authorization: Bearer <token>`. */
  bearerToken?: string;
  /** `max_entries_limit_per_query`; 5000 as in Loki's defaults. */
  maxEntriesLimit?: number;
}

const QUERY_RANGE_PARAMS = new Set([
  'query',
  'start',
  'end',
  'since',
  'limit',
  'step',
  'interval',
  'direction',
]);

export class LokiFake {
  private readonly streams = new Map<string, { labels: Record<string, string>; entries: Entry[] }>();

  private constructor(
    readonly server: ScriptedHttpServer,
    private readonly options: LokiFakeOptions,
  ) {}

  static async start(options: LokiFakeOptions = {}): Promise<LokiFake> {
    let fake: LokiFake | undefined;
    await ScriptedHttpServer.start((server) => {
      const created = new LokiFake(server, options);
      fake = created;
      return (req) => created.handle(req);
    });
    if (!fake) throw new Error('LokiFake did not start');
    return fake;
  }

  get baseUrl(): string {
    return this.server.baseUrl;
  }

  /** Requests that broke the documented contract; a test expects none. */
  get violations(): string[] {
    return this.server.violations;
  }

  /** Adds a log line to the stream with these labels. */
  push(labels: Record<string, string>, time: Date | bigint, line: string): void {
    const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
    const stream = this.streams.get(key) ?? { labels, entries: [] };
    stream.entries.push({ ts: typeof time === 'bigint' ? time : BigInt(time.getTime()) * 1_000_000n, line });
    this.streams.set(key, stream);
  }

  close(): Promise<void> {
    return this.server.close();
  }

  private refuse(status: number, message: string): FakeResponse {
    this.server.violation(`${status}: ${message}`);
    return { status, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: `${message}\n` };
  }

  private handle(req: RecordedRequest): FakeResponse {
    if (this.options.bearerToken && req.headers.authorization !== `Bearer ${this.options.bearerToken}`)
      return this.refuse(401, 'Unauthorized');
    if (req.url.pathname === '/ready') return { status: 200, body: 'ready\n' };
    if (req.url.pathname !== '/loki/api/v1/query_range')
      return this.refuse(404, `404 page not found (the fake serves only query_range): ${req.url.pathname}`);
    if (req.method !== 'GET' && req.method !== 'POST') return this.refuse(405, 'method not allowed');
    const tenantHeader = req.headers['x-scope-orgid'];
    const tenant = Array.isArray(tenantHeader) ? tenantHeader[0] : tenantHeader;
    if (this.options.tenant && !tenant) return this.refuse(401, 'no org id');
    const params = req.method === 'POST' ? new URLSearchParams(req.body) : req.url.searchParams;
    for (const name of params.keys())
      if (!QUERY_RANGE_PARAMS.has(name)) this.server.violation(`unknown query_range parameter ${name}`);

    const queryText = params.get('query') ?? '';
    let query: Query;
    try {
      query = parseLogql(queryText);
    } catch (err) {
      if (err instanceof LogqlError) return this.refuse(400, err.message);
      throw err;
    }
    const now = BigInt(Date.now()) * 1_000_000n;
    const endText = params.get('end');
    const startText = params.get('start');
    const end = endText ? parseTimestamp(endText) : now;
    if (end === undefined) return this.refuse(400, `cannot parse "${endText}" to a valid timestamp`);
    const sinceNs = params.get('since') ? parseDuration(params.get('since') ?? '') : 3_600_000_000_000n;
    if (sinceNs === undefined)
      return this.refuse(400, `cannot parse "${params.get('since')}" to a valid duration`);
    const start = startText ? parseTimestamp(startText) : end - sinceNs;
    if (start === undefined) return this.refuse(400, `cannot parse "${startText}" to a valid timestamp`);
    if (end < start) return this.refuse(400, 'end timestamp must not be before or equal to start time');
    const limitText = params.get('limit');
    const limit = limitText === null ? 100 : /^-?\d+$/.test(limitText) ? Number(limitText) : NaN;
    if (Number.isNaN(limit)) return this.refuse(400, `strconv.Atoi: parsing "${limitText}": invalid syntax`);
    if (limit <= 0) return this.refuse(400, 'limit must be a positive value');
    const maxEntries = this.options.maxEntriesLimit ?? 5000;
    if (limit > maxEntries)
      return this.refuse(
        400,
        `max entries limit per query exceeded, limit > max_entries_limit (${limit} > ${maxEntries})`,
      );
    const direction = (params.get('direction') ?? 'backward').toLowerCase();
    if (direction !== 'backward' && direction !== 'forward')
      return this.refuse(400, `invalid direction '${params.get('direction')}'`);
    const stepText = params.get('step');
    let step: bigint;
    if (stepText === null) {
      const seconds = Math.max(Math.floor(Number(end - start) / 1e9 / 250), 1);
      step = BigInt(seconds) * 1_000_000_000n;
    } else if (/^-?\d+(\.\d+)?$/.test(stepText)) {
      step = BigInt(Math.round(Number(stepText) * 1e9));
    } else {
      const d = parseDuration(stepText);
      if (d === undefined) return this.refuse(400, `cannot parse "${stepText}" to a valid duration`);
      step = d;
    }
    if (step <= 0n)
      return this.refuse(
        400,
        'zero or negative query resolution step widths are not accepted. Try a positive integer',
      );
    if ((end - start) / step > 11000n)
      return this.refuse(
        400,
        'exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter',
      );

    const visible = this.options.tenant && tenant !== this.options.tenant ? [] : [...this.streams.values()];
    const matching = visible
      .filter((s) => query.log.matchers.every((m) => matches(m, s.labels[m.name] ?? '')))
      .map((s) => ({
        labels: s.labels,
        entries: s.entries.filter((e) => passes(query.log.filters, e.line)),
      }));
    const stats = { summary: { execTime: 0.001, queueTime: 0, totalEntriesReturned: 0 } };

    if (query.kind === 'log') {
      const inWindow = matching.flatMap((s) =>
        s.entries.filter((e) => e.ts >= start && e.ts < end).map((e) => ({ ...e, labels: s.labels })),
      );
      const sign = direction === 'backward' ? -1 : 1;
      inWindow.sort((a, b) => (a.ts === b.ts ? 0 : (a.ts < b.ts ? -1 : 1) * sign));
      const chosen = inWindow.slice(0, limit);
      const byStream = new Map<Record<string, string>, [string, string][]>();
      for (const e of chosen)
        byStream.set(e.labels, [...(byStream.get(e.labels) ?? []), [e.ts.toString(), e.line]]);
      stats.summary.totalEntriesReturned = chosen.length;
      return {
        status: 200,
        body: {
          status: 'success',
          data: {
            resultType: 'streams',
            result: [...byStream].map(([stream, values]) => ({ stream, values })),
            stats,
          },
        },
      };
    }

    const series = new Map<string, { metric: Record<string, string>; values: [number, string][] }>();
    for (let t = start; t <= end; t += step) {
      for (const s of matching) {
        const count = s.entries.filter((e) => e.ts > t - query.rangeNs && e.ts <= t).length;
        if (count === 0) continue;
        const metric = query.sum ? {} : s.labels;
        const key = JSON.stringify(metric);
        const entry = series.get(key) ?? { metric, values: [] };
        const seconds = Number(t) / 1e9;
        const last = entry.values.at(-1);
        if (last && last[0] === seconds) last[1] = String(Number(last[1]) + count);
        else entry.values.push([seconds, String(count)]);
        series.set(key, entry);
      }
    }
    return {
      status: 200,
      body: { status: 'success', data: { resultType: 'matrix', result: [...series.values()], stats } },
    };
  }
}

function matches(m: LogQuery['matchers'][number], value: string): boolean {
  switch (m.op) {
    case '=':
      return value === m.value;
    case '!=':
      return value !== m.value;
    case '=~':
      return m.regex?.test(value) ?? false;
    case '!~':
      return !(m.regex?.test(value) ?? false);
  }
}

function passes(filters: LogQuery['filters'], line: string): boolean {
  return filters.every((f) => {
    switch (f.op) {
      case '|=':
        return line.includes(f.value);
      case '!=':
        return !line.includes(f.value);
      case '|~':
        return f.regex?.test(line) ?? false;
      case '!~':
        return !(f.regex?.test(line) ?? false);
    }
  });
}
