/**
 * A real S3-protocol server for the S3 activity tests: s3rver (dev dependency) in a child process, behind
 * a small recording proxy on 127.0.0.1 that can script faults (an S3 XML error, a dropped connection) and
 * hold requests (to cancel in the middle of a multipart upload).
 *
 * Why a child process: s3rver builds ListObjectsV2 continuation tokens with DES, which OpenSSL 3 (Node 17+)
 * only offers through its legacy provider; the child runs with `--openssl-legacy-provider`.
 * What s3rver does not do (so these tests script it through the proxy): it does not verify SigV4
 * signatures (a wrong secret is accepted; only an unknown access key id is refused), it has no
 * AbortMultipartUpload (405 MethodNotAllowed) and no UploadPartCopy (501 NotImplemented), and never sends
 * AccessDenied, SignatureDoesNotMatch or SlowDown by itself. Its DeleteObjects deletes a batch concurrently and
 * can race (500 InternalError) removing a folder two deleted keys share.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

export interface SeenRequest {
  method: string;
  url: URL;
}

export type Fault =
  | { status: number; code: string; message: string; headers?: Record<string, string> }
  | { dropConnection: true }
  | { status: 200; xml: string };

interface FaultRule {
  match: (r: SeenRequest) => boolean;
  fault: Fault;
  remaining: number;
}

interface HoldRule {
  match: (r: SeenRequest) => boolean;
  waiting: (() => void)[];
  active: boolean;
}

/** The S3 operation a request is, as far as these tests need to tell them apart. */
export function s3Operation(r: SeenRequest): string {
  const q = r.url.searchParams;
  if (r.method === 'POST' && q.has('uploads')) return 'CreateMultipartUpload';
  if (r.method === 'PUT' && q.has('partNumber')) return 'UploadPart';
  if (r.method === 'POST' && q.has('uploadId')) return 'CompleteMultipartUpload';
  if (r.method === 'DELETE' && q.has('uploadId')) return 'AbortMultipartUpload';
  if (r.method === 'POST' && q.has('delete')) return 'DeleteObjects';
  if (r.method === 'GET' && q.get('list-type') === '2') return 'ListObjectsV2';
  if (r.method === 'HEAD') return 'HeadObject';
  if (r.method === 'GET') return 'GetObject';
  if (r.method === 'PUT') return 'PutObject/CopyObject';
  return `${r.method} ${r.url.pathname}`;
}

const CHILD_SCRIPT = `
const S3rver = require(process.argv[1]);
const server = new S3rver({
  address: '127.0.0.1', port: 0, silent: true, directory: process.argv[2],
  configureBuckets: process.argv.slice(3).map((name) => ({ name, configs: [] })),
});
server.run().then((addr) => process.stdout.write(JSON.stringify({ port: addr.port }) + '\\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

export class S3TestServer {
  readonly requests: SeenRequest[] = [];
  private readonly faults: FaultRule[] = [];
  private readonly holds: HoldRule[] = [];

  private constructor(
    private readonly child: ChildProcess,
    private readonly proxy: http.Server,
    readonly endpoint: string,
    private readonly dataDir: string,
  ) {}

  /** Starts s3rver with the given buckets and the proxy; throws naming what is missing. */
  static async start(buckets: string[]): Promise<S3TestServer> {
    let s3rverPath: string;
    try {
      s3rverPath = createRequire(__filename).resolve('s3rver');
    } catch {
      throw new Error('The S3 tests need the npm dev dependency "s3rver" (run npm ci); it is not installed.');
    }
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 's3rver-'));
    const child = spawn(
      process.execPath,
      ['--openssl-legacy-provider', '-e', CHILD_SCRIPT, s3rverPath, dataDir, ...buckets],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`s3rver did not start within 15 s: ${err}`)), 15_000);
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        const line = out.split('\n')[0];
        if (out.includes('\n') && line) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { port: number }).port);
        }
      });
      child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited with ${code}: ${err}`));
      });
    });
    const holder: { server?: S3TestServer } = {};
    const proxy = http.createServer((req, res) => holder.server?.handle(req, res, port));
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const server = new S3TestServer(child, proxy, endpoint, dataDir);
    holder.server = server;
    return server;
  }

  /** The next `times` requests matching `match` get `fault` instead of reaching s3rver. */
  failNext(match: (r: SeenRequest) => boolean, fault: Fault, times = 1): void {
    this.faults.push({ match, fault, remaining: times });
  }

  /** Holds matching requests until the returned function is called. */
  hold(match: (r: SeenRequest) => boolean): { release: () => void; held: () => number } {
    const rule: HoldRule = { match, waiting: [], active: true };
    this.holds.push(rule);
    return {
      release: () => {
        rule.active = false;
        for (const go of rule.waiting.splice(0)) go();
      },
      held: () => rule.waiting.length,
    };
  }

  /** Operations seen since `from` (an index into `requests`). */
  operations(from = 0): string[] {
    return this.requests.slice(from).map(s3Operation);
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  async stop(): Promise<void> {
    for (const h of this.holds) for (const go of h.waiting.splice(0)) go();
    this.proxy.closeAllConnections();
    await new Promise<void>((resolve) => this.proxy.close(() => resolve()));
    this.child.stdin?.end();
    if (this.child.exitCode === null) {
      await new Promise<void>((resolve) => {
        this.child.once('exit', () => resolve());
        this.child.kill('SIGTERM');
      });
    }
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, port: number): void {
    const seen: SeenRequest = { method: req.method ?? 'GET', url: new URL(req.url ?? '/', this.endpoint) };
    this.requests.push(seen);
    const rule = this.faults.find((f) => f.remaining > 0 && f.match(seen));
    if (rule) {
      rule.remaining -= 1;
      req.resume();
      const { fault } = rule;
      if ('dropConnection' in fault) {
        req.socket.destroy();
        return;
      }
      if ('xml' in fault) {
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/xml' });
          res.end(fault.xml);
        });
        return;
      }
      const body =
        '<?xml version="1.0" encoding="UTF-8"?>\n' +
        `<Error><Code>${fault.code}</Code><Message>${fault.message}</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>`;
      req.on('end', () => {
        res.writeHead(fault.status, { 'content-type': 'application/xml', ...(fault.headers ?? {}) });
        res.end(seen.method === 'HEAD' ? undefined : body);
      });
      return;
    }
    const forward = () => {
      const upstream = http.request(
        { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    };
    const hold = this.holds.find((h) => h.active && h.match(seen));
    if (hold) hold.waiting.push(forward);
    else forward();
  }
}
