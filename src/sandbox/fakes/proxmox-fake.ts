/**
 * A spec-faithful fake of the Proxmox VE API (`/api2/json`) for the QEMU guest endpoints the activities
 * use, on 127.0.0.1. Every request is checked against the official API description
 * (`src/sandbox/fakes/specs/proxmox-apidata.json`, the file behind the pve-docs API viewer): the path
 * must exist, the method must be documented for it, and each parameter must be documented with the right
 * type, enum, pattern, format, length and range, and required ones must be present. Every answer the fake
 * gives is checked against the documented `returns` schema. Breaches go to `violations` (a test expects
 * none) and the request gets the 400 Proxmox sends for a parameter verification failure.
 *
 * State: guests (name, template flag, snapshots, lock) and tasks. Mutating calls answer with a UPID, and
 * the task progresses over status polls, then ends with the scripted exit status ("OK" by default).
 * Like Proxmox, the effect is visible while the task runs (the guest is locked) and is undone when the
 * task fails.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

/** The API description; `PROXMOX_APIDATA` overrides where it is looked for. */
const APIDATA_PATH = process.env['PROXMOX_APIDATA'] ?? path.resolve(__dirname, 'specs/proxmox-apidata.json');

interface PveSchema {
  type?: string;
  optional?: number | boolean;
  enum?: string[];
  pattern?: string;
  format?: string | Record<string, unknown>;
  maxLength?: number;
  minLength?: number;
  minimum?: number | string;
  maximum?: number | string;
  properties?: Record<string, PveSchema>;
  additionalProperties?: number | boolean | PveSchema;
  items?: PveSchema;
}

interface PveMethodInfo {
  name?: string;
  parameters?: { properties?: Record<string, PveSchema>; additionalProperties?: number | boolean };
  returns?: PveSchema;
}

interface PveNode {
  path: string;
  info?: Record<string, PveMethodInfo>;
  children?: PveNode[];
}

interface Route {
  template: string;
  regex: RegExp;
  names: string[];
  literals: number;
  info: Record<string, PveMethodInfo>;
}

let cachedRoutes: Route[] | undefined;

function loadRoutes(): Route[] {
  cachedRoutes ??= parseRoutes();
  return cachedRoutes;
}

function parseRoutes(): Route[] {
  if (!fs.existsSync(APIDATA_PATH)) {
    throw new Error(
      `The Proxmox fake needs the API description (proxmox-ve/apidata.json from pve-docs) at ${APIDATA_PATH}, or where PROXMOX_APIDATA points; it is missing.`,
    );
  }
  const tree = JSON.parse(fs.readFileSync(APIDATA_PATH, 'utf8')) as PveNode[];
  const routes: Route[] = [];
  const walk = (nodes: PveNode[]) => {
    for (const n of nodes) {
      if (n.info) {
        const names: string[] = [];
        const source = n.path
          .split('/')
          .map((seg) => {
            const m = /^\{(.+)\}$/.exec(seg);
            if (!m) return seg.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
            names.push(m[1] ?? '');
            return '([^/]+)';
          })
          .join('/');
        routes.push({
          template: n.path,
          regex: new RegExp(`^${source}$`),
          names,
          literals: n.path.split('/').filter((s) => s && !s.startsWith('{')).length,
          info: n.info,
        });
      }
      if (n.children) walk(n.children);
    }
  };
  walk(tree);
  return routes;
}

/** The `format`s of the parameters the activities send; an unknown one is a violation, never a pass. */
const FORMATS: Record<string, RegExp> = {
  'pve-node': /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/,
  'pve-vmid': /^[0-9]+$/,
  'pve-configid': /^[a-z][a-z0-9_-]+$/i,
  'dns-name': /^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)\.)*[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/,
  'pve-poolid': /^[A-Za-z0-9_-]+$/,
  'pve-storage-id': /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i,
};

/** Proxmox patterns are Perl regular expressions, anchored by the server. */
function perlPattern(pattern: string): RegExp {
  const insensitive = pattern.includes('(?^i:');
  const js = pattern.replace(/\(\?\^i?:/g, '(?:');
  return new RegExp(`^(?:${js})$`, insensitive ? 'i' : '');
}

/** Checks one raw (string) parameter value against its documented schema; returns a problem or undefined. */
function checkParameter(value: string, schema: PveSchema): string | undefined {
  switch (schema.type) {
    case 'integer':
    case 'number': {
      const ok =
        schema.type === 'integer'
          ? /^[+-]?\d+$/.test(value)
          : /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(value);
      if (!ok) return `type check ('${schema.type}') failed - got '${value}'`;
      const n = Number(value);
      if (schema.minimum !== undefined && n < Number(schema.minimum))
        return `value must have a minimum value of ${schema.minimum}`;
      if (schema.maximum !== undefined && n > Number(schema.maximum))
        return `value must have a maximum value of ${schema.maximum}`;
      break;
    }
    case 'boolean':
      if (!/^(1|true|yes|on|0|false|no|off)$/i.test(value))
        return `type check ('boolean') failed - got '${value}'`;
      break;
    case 'string':
      if (schema.maxLength !== undefined && value.length > schema.maxLength)
        return `value may only be ${schema.maxLength} characters long`;
      if (schema.minLength !== undefined && value.length < schema.minLength)
        return `value must be at least ${schema.minLength} characters long`;
      break;
    default:
      return `the fake cannot check parameters of type '${schema.type ?? '(none)'}'`;
  }
  if (schema.enum && !schema.enum.includes(value))
    return `value '${value}' does not have a value in the enumeration '${schema.enum.join(', ')}'`;
  if (schema.pattern && !perlPattern(schema.pattern).test(value))
    return `value does not match the regex pattern`;
  if (typeof schema.format === 'string') {
    const format = FORMATS[schema.format];
    if (!format) return `the fake cannot check format '${schema.format}'`;
    if (!format.test(value)) return `value does not match format '${schema.format}'`;
  }
  return undefined;
}

/** Checks a JSON answer against a documented `returns` schema; appends problems. Only documented fields may appear. */
export function checkReturns(
  value: unknown,
  schema: PveSchema | undefined,
  at: string,
  problems: string[],
): void {
  if (!schema || schema.type === undefined) return;
  if (value === null || value === undefined) {
    if (schema.type !== 'null') problems.push(`${at}: null where ${schema.type} is documented`);
    return;
  }
  switch (schema.type) {
    case 'string':
      if (typeof value !== 'string') problems.push(`${at}: ${JSON.stringify(value)} is not a string`);
      else if (schema.enum && !schema.enum.includes(value))
        problems.push(`${at}: '${value}' is not one of ${schema.enum.join('|')}`);
      return;
    case 'integer':
      if (!Number.isInteger(value)) problems.push(`${at}: ${JSON.stringify(value)} is not an integer`);
      return;
    case 'number':
      if (typeof value !== 'number') problems.push(`${at}: ${JSON.stringify(value)} is not a number`);
      return;
    case 'boolean':
      // Proxmox serialises booleans as 0/1.
      if (value !== 0 && value !== 1 && typeof value !== 'boolean')
        problems.push(`${at}: ${JSON.stringify(value)} is not a boolean`);
      return;
    case 'array':
      if (!Array.isArray(value)) problems.push(`${at}: not an array`);
      else value.forEach((v, i) => checkReturns(v, schema.items, `${at}[${i}]`, problems));
      return;
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) {
        problems.push(`${at}: not an object`);
        return;
      }
      if (!schema.properties) return;
      const obj = value as Record<string, unknown>;
      for (const [k, sub] of Object.entries(schema.properties)) {
        if (obj[k] === undefined) {
          if (!sub.optional) problems.push(`${at}.${k}: required but missing`);
        } else checkReturns(obj[k], sub, `${at}.${k}`, problems);
      }
      for (const k of Object.keys(obj))
        if (!(k in schema.properties)) problems.push(`${at}.${k}: not documented`);
      return;
    }
    case 'null':
      problems.push(`${at}: ${JSON.stringify(value)} where null is documented`);
      return;
    default:
      problems.push(`${at}: the fake cannot check returns of type '${schema.type}'`);
  }
}

export interface FakeGuest {
  vmid: number;
  name: string;
  template: boolean;
  snapshots: Map<string, { description: string; snaptime: number }>;
  lock?: string;
}

interface FakeTask {
  upid: string;
  node: string;
  type: string;
  id: string;
  user: string;
  pid: number;
  pstart: number;
  starttime: number;
  pollsLeft: number;
  exitstatus: string;
  done?: string;
  log: string[];
  finish: (ok: boolean) => void;
}

export interface RecordedCall {
  method: string;
  /** The documented path template, e.g. `/nodes/{node}/qemu/{vmid}/snapshot`. */
  route: string;
  params: Record<string, string>;
}

type Scripted = { status: number; message: string };

export interface ProxmoxFakeOptions {
  node: string;
  tokenId: string;
  tokenSecret: string;
  /** Status polls an unscripted task takes to end; 2 by default, 1 ends it on the first poll. */
  taskPolls?: number;
}

class PveError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: Record<string, string>,
  ) {
    super(message);
  }
}

export class ProxmoxFake {
  readonly calls: RecordedCall[] = [];
  readonly violations: string[] = [];
  readonly guests = new Map<number, FakeGuest>();
  readonly tasks = new Map<string, FakeTask>();
  private readonly routes = loadRoutes();
  private readonly scripted: { match: (c: RecordedCall) => boolean; answer: Scripted }[] = [];
  private nextTask: { polls: number; exitstatus: string }[] = [];
  private server!: http.Server;
  private pid = 0x1000;
  baseUrl = '';

  private constructor(readonly options: ProxmoxFakeOptions) {}

  static async start(options: ProxmoxFakeOptions): Promise<ProxmoxFake> {
    const fake = new ProxmoxFake(options);
    fake.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => fake.handle(req, Buffer.concat(chunks).toString('utf8'), res));
    });
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.baseUrl = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}/api2/json`;
    return fake;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  addGuest(guest: { vmid: number; name: string; template?: boolean; snapshots?: string[] }): void {
    this.guests.set(guest.vmid, {
      vmid: guest.vmid,
      name: guest.name,
      template: guest.template ?? false,
      snapshots: new Map(
        (guest.snapshots ?? []).map((s) => [s, { description: '', snaptime: 1_700_000_000 }]),
      ),
    });
  }

  /**
   * Ends every task still running with its scripted exit status, as Proxmox would finish them with nobody
   * watching (a test that held a task and stopped waiting for it releases the guest's lock this way).
   */
  finishRunningTasks(): void {
    for (const t of this.tasks.values()) if (!t.done) this.endTask(t);
  }

  private endTask(t: FakeTask): void {
    t.pollsLeft = 0;
    t.done = t.exitstatus;
    t.log.push(
      t.exitstatus === 'OK'
        ? 'TASK OK'
        : t.exitstatus.startsWith('WARNINGS')
          ? `TASK ${t.exitstatus}`
          : `TASK ERROR: ${t.exitstatus}`,
    );
    t.finish(t.exitstatus === 'OK' || t.exitstatus.startsWith('WARNINGS'));
  }

  /** The next task started ends after `polls` status polls with `exitstatus`. */
  scriptNextTask(polls: number, exitstatus = 'OK'): void {
    this.nextTask.push({ polls, exitstatus });
  }

  /** The next call matching gets this error answer instead. */
  failNext(match: (c: RecordedCall) => boolean, answer: Scripted): void {
    this.scripted.push({ match, answer });
  }

  callsTo(method: string, route: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method && c.route === route);
  }

  private send(res: http.ServerResponse, status: number, body: unknown, reason?: string): void {
    res.statusMessage = (reason ?? (status === 200 ? 'OK' : 'error')).replace(/[\r\n]+/g, ' ');
    res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8' });
    res.end(JSON.stringify(body));
  }

  private handle(req: http.IncomingMessage, rawBody: string, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const prefix = '/api2/json';
    if (!url.pathname.startsWith(prefix)) {
      this.violations.push(`${method} ${url.pathname}: not below ${prefix}`);
      return this.send(res, 404, { data: null }, 'Not found');
    }
    const auth = req.headers.authorization ?? '';
    if (auth !== `PVEAPIToken=${this.options.tokenId}=${this.options.tokenSecret}`) {
      return this.send(res, 401, { data: null }, auth ? 'invalid token value!' : 'No ticket');
    }
    const apiPath = url.pathname.slice(prefix.length) || '/';
    const route = this.routes
      .map((r) => ({ r, m: r.regex.exec(apiPath) }))
      .filter((x) => x.m)
      .sort((a, b) => b.r.literals - a.r.literals)[0];
    if (!route?.m) {
      this.violations.push(`${method} ${apiPath}: no such path in the API description`);
      return this.send(res, 501, { data: null }, `Method '${method} ${apiPath}' not implemented`);
    }
    const info = route.r.info[method];
    if (!info) {
      this.violations.push(`${method} ${route.r.template}: method not documented for this path`);
      return this.send(res, 501, { data: null }, `Method '${method} ${apiPath}' not implemented`);
    }

    const params: Record<string, string> = {};
    route.r.names.forEach((name, i) => (params[name] = decodeURIComponent(route.m?.[i + 1] ?? '')));
    for (const [k, v] of url.searchParams) params[k] = v;
    if (rawBody) {
      const type = req.headers['content-type'] ?? '';
      if (!type.startsWith('application/x-www-form-urlencoded')) {
        this.violations.push(`${method} ${route.r.template}: body sent as '${type}', not form-encoded`);
      }
      for (const [k, v] of new URLSearchParams(rawBody)) params[k] = v;
    }
    const call: RecordedCall = { method, route: route.r.template, params };
    this.calls.push(call);

    const problems: Record<string, string> = {};
    const documented = info.parameters?.properties ?? {};
    for (const [name, schema] of Object.entries(documented)) {
      const value = params[name];
      if (value === undefined) {
        if (!schema.optional) problems[name] = 'property is missing and it is not optional';
        continue;
      }
      const problem = checkParameter(value, schema);
      if (problem) problems[name] = problem;
    }
    if (!info.parameters?.additionalProperties) {
      for (const name of Object.keys(params))
        if (!(name in documented))
          problems[name] =
            'property is not defined in schema and the schema does not allow additional properties';
    }
    if (Object.keys(problems).length > 0) {
      for (const [k, v] of Object.entries(problems))
        this.violations.push(`${method} ${route.r.template}: ${k}: ${v}`);
      return this.send(res, 400, { data: null, errors: problems }, 'Parameter verification failed.');
    }

    const scripted = this.scripted.findIndex((s) => s.match(call));
    if (scripted >= 0) {
      const answer = this.scripted.splice(scripted, 1)[0]?.answer ?? { status: 500, message: 'script' };
      return this.send(res, answer.status, { data: null, message: `${answer.message}\n` }, answer.message);
    }

    let data: unknown;
    try {
      data = this.answer(method, route.r.template, params);
    } catch (err) {
      if (err instanceof PveError) {
        return this.send(
          res,
          err.status,
          { data: null, message: `${err.message}\n`, ...(err.errors ? { errors: err.errors } : {}) },
          err.message,
        );
      }
      throw err;
    }
    const returnProblems: string[] = [];
    checkReturns(data, info.returns, 'data', returnProblems);
    for (const p of returnProblems) this.violations.push(`answer to ${method} ${route.r.template}: ${p}`);
    this.send(res, 200, { data });
  }

  private guest(vmid: string): FakeGuest {
    const guest = this.guests.get(Number(vmid));
    if (!guest)
      throw new PveError(
        500,
        `Configuration file 'nodes/${this.options.node}/qemu-server/${vmid}.conf' does not exist`,
      );
    return guest;
  }

  private checkNode(node: string): void {
    if (node !== this.options.node) {
      throw new PveError(
        500,
        `hostname lookup '${node}' failed - failed to get address info for: ${node}: Name or service not known`,
      );
    }
  }

  private unlocked(guest: FakeGuest): void {
    if (guest.lock) throw new PveError(500, `VM is locked (${guest.lock})`);
  }

  private startTask(type: string, vmid: number, log: string[], finish: (ok: boolean) => void): string {
    const script = this.nextTask.shift() ?? { polls: this.options.taskPolls ?? 2, exitstatus: 'OK' };
    this.pid += 1;
    const starttime = 1_760_400_000 + this.tasks.size;
    const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
    const upid = `UPID:${this.options.node}:${hex(this.pid)}:${hex(this.pid * 7)}:${hex(starttime)}:${type}:${vmid}:${this.options.tokenId}:`;
    this.tasks.set(upid, {
      upid,
      node: this.options.node,
      type,
      id: String(vmid),
      user: this.options.tokenId,
      pid: this.pid,
      pstart: this.pid * 7,
      starttime,
      pollsLeft: script.polls,
      exitstatus: script.exitstatus,
      log,
      finish,
    });
    return upid;
  }

  private answer(method: string, route: string, p: Record<string, string>): unknown {
    const key = `${method} ${route}`;
    if (p['node'] !== undefined) this.checkNode(p['node']);
    switch (key) {
      case 'GET /cluster/resources':
        return [...this.guests.values()].map((g) => ({
          id: `qemu/${g.vmid}`,
          type: 'qemu',
          vmid: g.vmid,
          node: this.options.node,
          name: g.name,
          status: 'stopped',
          template: g.template ? 1 : 0,
          ...(g.lock ? { lock: g.lock } : {}),
        }));
      case 'GET /nodes/{node}/qemu/{vmid}/snapshot': {
        const g = this.guest(p['vmid'] ?? '');
        return [
          ...[...g.snapshots].map(([name, s]) => ({
            name,
            description: s.description,
            snaptime: s.snaptime,
          })),
          { name: 'current', description: 'You are here!' },
        ];
      }
      case 'POST /nodes/{node}/qemu/{vmid}/snapshot': {
        const g = this.guest(p['vmid'] ?? '');
        this.unlocked(g);
        const name = p['snapname'] ?? '';
        if (g.snapshots.has(name)) throw new PveError(500, `snapshot name '${name}' already used`);
        g.snapshots.set(name, { description: p['description'] ?? '', snaptime: 1_760_400_000 });
        g.lock = 'snapshot';
        return this.startTask('qmsnapshot', g.vmid, [`snapshotting '${name}'`], (ok) => {
          g.lock = undefined;
          if (!ok) g.snapshots.delete(name);
        });
      }
      case 'GET /nodes/{node}/qemu/{vmid}/config': {
        const g = this.guest(p['vmid'] ?? '');
        return {
          name: g.name,
          digest: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678',
          ...(g.template ? { template: 1 } : {}),
          ...(g.lock ? { lock: g.lock } : {}),
        };
      }
      case 'POST /nodes/{node}/qemu/{vmid}/template': {
        const g = this.guest(p['vmid'] ?? '');
        this.unlocked(g);
        if (g.template) throw new PveError(500, `you can't convert a template to a template`);
        g.lock = 'create';
        return this.startTask('qmtemplate', g.vmid, ['converting to template'], (ok) => {
          g.lock = undefined;
          if (ok) g.template = true;
        });
      }
      case 'POST /nodes/{node}/qemu/{vmid}/clone': {
        const source = this.guest(p['vmid'] ?? '');
        const newid = Number(p['newid']);
        if (this.guests.has(newid))
          throw new PveError(500, `unable to create VM ${newid}: config file already exists`);
        const clone: FakeGuest = {
          vmid: newid,
          name: p['name'] ?? `Copy-of-VM-${source.name}`,
          template: false,
          snapshots: new Map(),
          lock: 'clone',
        };
        this.guests.set(newid, clone);
        return this.startTask(
          'qmclone',
          source.vmid,
          [`create ${p['full'] === '1' ? 'full' : 'linked'} clone of drive scsi0`],
          (ok) => {
            if (ok) clone.lock = undefined;
            else this.guests.delete(newid);
          },
        );
      }
      case 'DELETE /nodes/{node}/qemu/{vmid}': {
        const g = this.guest(p['vmid'] ?? '');
        this.unlocked(g);
        g.lock = 'destroyed';
        return this.startTask('qmdestroy', g.vmid, [`destroying VM ${g.vmid}`], (ok) => {
          if (ok) this.guests.delete(g.vmid);
          else g.lock = undefined;
        });
      }
      case 'GET /nodes/{node}/tasks': {
        const vmid = p['vmid'];
        const type = p['typefilter'];
        const active = p['source'] === 'active';
        return [...this.tasks.values()]
          .filter(
            (t) =>
              (vmid === undefined || t.id === vmid) &&
              (type === undefined || t.type === type) &&
              (!active || !t.done),
          )
          .map((t) => ({
            upid: t.upid,
            node: t.node,
            pid: t.pid,
            pstart: t.pstart,
            starttime: t.starttime,
            type: t.type,
            id: t.id,
            user: t.user,
            ...(t.done ? { endtime: t.starttime + 5, status: t.done } : {}),
          }));
      }
      case 'GET /nodes/{node}/tasks/{upid}/status': {
        const t = this.tasks.get(p['upid'] ?? '');
        if (!t) throw new PveError(500, `unable to parse worker upid '${p['upid']}'`);
        if (!t.done) {
          t.pollsLeft -= 1;
          if (t.pollsLeft <= 0) this.endTask(t);
        }
        return {
          upid: t.upid,
          node: t.node,
          pid: t.pid,
          pstart: t.pstart,
          starttime: t.starttime,
          type: t.type,
          id: t.id,
          user: t.user,
          status: t.done ? 'stopped' : 'running',
          ...(t.done ? { exitstatus: t.done } : {}),
        };
      }
      case 'GET /nodes/{node}/tasks/{upid}/log': {
        const t = this.tasks.get(p['upid'] ?? '');
        if (!t) throw new PveError(500, `unable to parse worker upid '${p['upid']}'`);
        const start = Number(p['start'] ?? 0);
        const limit = Number(p['limit'] ?? 50);
        return t.log.slice(start, start + limit).map((text, i) => ({ n: start + i + 1, t: text }));
      }
      default:
        this.violations.push(`${key}: documented, but the fake does not implement it`);
        throw new PveError(501, `Method '${key}' not implemented by the fake`);
    }
  }
}
