/**
 * The small HTTP server under the spec-faithful fakes of Loki, Grafana, Telegram and the CDN: it listens on
 * 127.0.0.1, records every request, lets a test script the next answers (an error status, a hang, a dropped
 * connection) and collects contract violations, the requests that break the documented contract. A test
 * asserts `violations` is empty, so an activity that drifts from the contract fails its test even when the
 * fake answered it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: URL;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface FakeResponse {
  status: number;
  headers?: Record<string, string>;
  /** An object is sent as JSON; a string or bytes (`Uint8Array`) as they are. */
  body?: unknown;
}

/**
 * A scripted answer for the next matching request, instead of what the fake would compute: a fixed
 * response, a request held open (`hang`), a connection dropped before anything happens (`dropConnection`),
 * or one dropped after the fake did the work, so the change happened but its answer is lost
 * (`loseResponse`).
 */
export type ScriptedAnswer =
  FakeResponse | { hang: true } | { dropConnection: true } | { loseResponse: true };

export type FakeHandler = (req: RecordedRequest) => FakeResponse | Promise<FakeResponse>;

export class ScriptedHttpServer {
  readonly requests: RecordedRequest[] = [];
  /** Every request that broke the documented contract, with why; a test expects none. */
  readonly violations: string[] = [];
  private readonly script: { matches: (req: RecordedRequest) => boolean; answer: ScriptedAnswer }[] = [];
  private hanging = 0;

  private server: http.Server | undefined;
  private url = '';

  private constructor() {}

  /** Starts a fake on 127.0.0.1 (a free port); `makeHandler` builds the fake's own answers. */
  static async start(makeHandler: (server: ScriptedHttpServer) => FakeHandler): Promise<ScriptedHttpServer> {
    const fake = new ScriptedHttpServer();
    const handle = makeHandler(fake);
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const recorded: RecordedRequest = {
          method: req.method ?? 'GET',
          url: new URL(req.url ?? '/', 'http://127.0.0.1'),
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        void fake.answer(recorded, res, handle);
      });
    });
    fake.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return fake;
  }

  get baseUrl(): string {
    return this.url;
  }

  /** Answers the next request (that `matches`, when given) with `answer` instead of the fake's own. */
  scriptNext(answer: ScriptedAnswer, matches: (req: RecordedRequest) => boolean = () => true): void {
    this.script.push({ matches, answer });
  }

  /** Requests currently held open by a scripted hang. */
  get hangingRequests(): number {
    return this.hanging;
  }

  violation(message: string): void {
    this.violations.push(message);
  }

  reset(): void {
    this.requests.length = 0;
    this.violations.length = 0;
    this.script.length = 0;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async answer(req: RecordedRequest, res: http.ServerResponse, handle: FakeHandler): Promise<void> {
    this.requests.push(req);
    const index = this.script.findIndex((s) => s.matches(req));
    const scripted = index >= 0 ? this.script.splice(index, 1)[0]?.answer : undefined;
    if (scripted && 'hang' in scripted) {
      this.hanging += 1;
      res.on('close', () => (this.hanging -= 1));
      return;
    }
    if (scripted && 'dropConnection' in scripted) {
      res.socket?.destroy();
      return;
    }
    let response: FakeResponse;
    try {
      response = scripted && 'status' in scripted ? scripted : await handle(req);
    } catch (err) {
      response = { status: 500, body: { message: `fake failed: ${(err as Error).message}` } };
    }
    if (scripted && 'loseResponse' in scripted) {
      res.socket?.destroy();
      return;
    }
    const headers = { ...(response.headers ?? {}) };
    let body: string | Uint8Array = '';
    if (typeof response.body === 'string' || response.body instanceof Uint8Array) body = response.body;
    else if (response.body !== undefined) {
      body = JSON.stringify(response.body);
      headers['content-type'] ??= 'application/json';
    }
    res.writeHead(response.status, headers);
    res.end(body);
  }
}

/** Collects every activity failure a test file saw, to check at the end that no secret reached any of them. */
export function serialisedFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { details?: unknown; type?: unknown; cause?: unknown };
  return JSON.stringify({
    name: e.name,
    message: e.message,
    stack: e.stack,
    type: e.type,
    details: e.details,
    cause: e.cause instanceof Error ? serialisedFailure(e.cause) : e.cause,
  });
}
