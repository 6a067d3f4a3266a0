/**
 * The sandbox's stand-in for the deployed applications: one HTTP server on 127.0.0.1 that answers for every
 * Coolify application under its own path prefix, `<baseUrl>/<application uuid>`, so that a smoke check of
 * an application URL (`fqdn` + `healthCheckPath`) reaches something that answers like the application.
 *
 * - `GET|HEAD /<uuid><healthCheckPath>`: 200 JSON `{status: "ok", application, service, environment,
 *   version}`, `version` being the image tag the application runs right now (as Coolify's fake says);
 * - `GET|HEAD /<uuid>/` (or without the slash): 200, a one-line HTML page naming application and version;
 * - anything else: 404.
 *
 * `setHealth(uuid, status)` scripts an unhealthy application: its health path answers that status (or, with
 * `'down'`, drops the connection) until `setHealth(uuid, 200)`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One application the server answers for. */
export interface SandboxApplication {
  uuid: string;
  service: string;
  environment: string;
  /** `blue` or `green` for a side-by-side deployment; absent for a single application. */
  colour?: string;
  healthCheckPath: string;
}

export interface AppServerOptions {
  applications: SandboxApplication[];
  /** The image tag an application runs now, or null (asked on every request). */
  runningVersion: (uuid: string) => string | null;
}

export class AppServer {
  /** Requests served, `METHOD /path`, in arrival order. */
  readonly requests: string[] = [];
  private readonly applications = new Map<string, SandboxApplication>();
  private readonly health = new Map<string, number | 'down'>();
  private url = '';

  private constructor(
    private readonly server: http.Server,
    private readonly options: AppServerOptions,
  ) {
    for (const app of options.applications) this.applications.set(app.uuid, app);
  }

  /** Starts the server on a free 127.0.0.1 port. */
  static async start(options: AppServerOptions): Promise<AppServer> {
    const server = http.createServer();
    const app = new AppServer(server, options);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => app.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    app.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return app;
  }

  get baseUrl(): string {
    return this.url;
  }

  /** The URL of an application (its Coolify `fqdn`): `<baseUrl>/<uuid>`. */
  urlOf(uuid: string): string {
    if (!this.applications.has(uuid)) throw new Error(`the sandbox has no application ${uuid}`);
    return `${this.url}/${encodeURIComponent(uuid)}`;
  }

  /** Makes the application's health path answer `status` (`'down'`: drop the connection); 200 restores it. */
  setHealth(uuid: string, status: number | 'down'): void {
    if (!this.applications.has(uuid)) throw new Error(`the sandbox has no application ${uuid}`);
    if (status === 200) this.health.delete(uuid);
    else this.health.set(uuid, status);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    this.requests.push(`${method} ${url.pathname}`);
    const [, first = '', ...rest] = url.pathname.split('/');
    const app = this.applications.get(decodeURIComponent(first));
    const send = (status: number, contentType: string, body: string) => {
      res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
      res.end(method === 'HEAD' ? undefined : body);
    };
    if (!app || (method !== 'GET' && method !== 'HEAD')) {
      send(404, 'text/plain; charset=utf-8', 'not found\n');
      return;
    }
    const local = `/${rest.join('/')}`;
    const version = this.options.runningVersion(app.uuid);
    if (local === app.healthCheckPath) {
      const scripted = this.health.get(app.uuid);
      if (scripted === 'down') {
        res.socket?.destroy();
        return;
      }
      const status = scripted ?? 200;
      send(
        status,
        'application/json',
        JSON.stringify({
          status: status === 200 ? 'ok' : 'unhealthy',
          application: app.uuid,
          service: app.service,
          environment: app.environment,
          ...(app.colour ? { colour: app.colour } : {}),
          version,
        }),
      );
      return;
    }
    if (local === '/') {
      send(
        200,
        'text/html; charset=utf-8',
        `<p>${app.service} (${app.uuid}) version ${version ?? 'none'}</p>\n`,
      );
      return;
    }
    send(404, 'text/plain; charset=utf-8', 'not found\n');
  }
}
