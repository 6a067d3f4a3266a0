/**
 * The HAProxy traffic provider against the real HAProxy (Debian package `haproxy`, /usr/sbin/haproxy):
 * a frontend on 127.0.0.1, backends whose servers are tiny in-process HTTP servers answering their colour,
 * and the runtime API on a TCP and a unix socket. Real HTTP requests through the frontend show where user
 * traffic lands.
 */
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { HaproxyRuntimeClient } from '../../../src/activities/traffic/haproxy-runtime-client';
import { createHaproxyTrafficActivities } from '../../../src/activities/traffic/haproxy-runtime';
import type { TrafficState } from '../../../src/activities/traffic/traffic-provider';
import { requireHaproxyBinary, startHaproxy, type HaproxyTestServer } from './haproxy-test-server';
import { expectFailure, quietLogger, runActivity } from './traffic-test-support';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function colourServer(colour: string): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
    res.end(colour);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: '/', agent: false, headers: { connection: 'close' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(res.statusCode === 200 ? body : `status ${res.statusCode}`));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Sends `n` real requests through the frontend (10 at a time) and counts the answers. */
async function countLandings(port: number, n = 200): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let sent = 0; sent < n; sent += 10) {
    const answers = await Promise.all(Array.from({ length: Math.min(10, n - sent) }, () => get(port)));
    for (const a of answers) counts[a] = (counts[a] ?? 0) + 1;
  }
  return counts;
}

let haproxy: HaproxyTestServer | undefined;
let frontendPort: number;
let adminPort: number;
let adminSocketPath: string;
let userSocketPath: string;
const upstreams: http.Server[] = [];
let admin: HaproxyRuntimeClient;

beforeAll(async () => {
  requireHaproxyBinary();
  const blue = await colourServer('blue');
  const green = await colourServer('green');
  upstreams.push(blue.server, green.server);
  const deadPort = await freePort();
  frontendPort = await freePort();
  adminPort = await freePort();
  const server = startHaproxy((dir) => {
    adminSocketPath = path.join(dir, 'admin.sock');
    userSocketPath = path.join(dir, 'user.sock');
    return [
      'global',
      `  stats socket ipv4@127.0.0.1:${adminPort} level admin`,
      `  stats socket ${adminSocketPath} mode 600 level admin`,
      `  stats socket ${userSocketPath} mode 600 level user`,
      'defaults',
      '  mode http',
      '  timeout connect 2s',
      '  timeout client 10s',
      '  timeout server 10s',
      'frontend fe',
      `  bind 127.0.0.1:${frontendPort}`,
      '  default_backend app',
      'backend app',
      '  balance roundrobin',
      `  server blue 127.0.0.1:${blue.port} weight 100 check inter 200ms`,
      `  server green 127.0.0.1:${green.port} weight 0 check inter 200ms`,
      'backend flaky',
      '  balance roundrobin',
      `  server blue 127.0.0.1:${blue.port} weight 100 check inter 100ms`,
      `  server dead 127.0.0.1:${deadPort} weight 0 check inter 100ms fall 1 rise 1`,
      '',
    ].join('\n');
  });
  haproxy = server;
  admin = new HaproxyRuntimeClient({ socket: { host: '127.0.0.1', port: adminPort } });
  await vi.waitFor(
    async () => {
      if (!server.running()) throw new Error(`haproxy exited: ${server.stderr()}`);
      const app = await admin.showServersState('app');
      const flaky = await admin.showServersState('flaky');
      // wait for the health checks: blue and green up, dead down
      expect(app.map((s) => s.operational)).toEqual([2, 2]);
      expect(flaky.map((s) => s.operational)).toEqual([2, 0]);
    },
    { timeout: 15_000, interval: 50 },
  );
});

afterAll(async () => {
  await haproxy?.stop();
  await Promise.all(upstreams.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** Every test starts from blue serving everything, green configured and idle. */
beforeEach(async () => {
  for (const command of [
    'set server app/blue weight 100',
    'set server app/blue state ready',
    'set server app/green weight 0',
    'set server app/green state ready',
  ])
    await admin.execute(command);
});

const provider = () => createHaproxyTrafficActivities({ socket: { host: '127.0.0.1', port: adminPort } });

describe('HAProxy traffic provider against a real HAProxy', () => {
  it('reads the traffic state of a backend', async () => {
    const state = await runActivity(provider().getTrafficState, { service: 'app' });
    expect(state).toMatchObject({
      service: 'app',
      active: 'blue',
      weights: [
        { target: 'blue', percent: 100 },
        { target: 'green', percent: 0 },
      ],
      mirrors: [],
      snapshot: {
        provider: 'haproxy',
        backend: 'app',
        servers: [
          { server: 'blue', weight: 100, admin: 'ready' },
          { server: 'green', weight: 0, admin: 'ready' },
        ],
      },
    });
    expect(await countLandings(frontendPort, 50)).toEqual({ blue: 50 });
  });

  it('switches all traffic to green, is a no-op when re-applied, and restores blue exactly', async () => {
    const p = provider();
    const first = await runActivity(p.switchTraffic, { service: 'app', to: 'green' });
    expect(first.changed).toBe(true);
    expect(first.previous.active).toBe('blue');
    expect(first.current.active).toBe('green');
    expect(await countLandings(frontendPort)).toEqual({ green: 200 });

    const again = await runActivity(p.switchTraffic, { service: 'app', to: 'green' });
    expect(again.changed).toBe(false);
    expect(again.previous).toEqual(first.current);
    expect(again.current).toEqual(first.current);
    expect(await countLandings(frontendPort)).toEqual({ green: 200 });

    const restored = await runActivity(p.restoreTrafficState, { service: 'app', state: first.previous });
    expect(restored.changed).toBe(true);
    expect(restored.current.snapshot).toEqual(first.previous.snapshot);
    expect(await countLandings(frontendPort)).toEqual({ blue: 200 });

    const restoredAgain = await runActivity(p.restoreTrafficState, { service: 'app', state: first.previous });
    expect(restoredAgain.changed).toBe(false);
  });

  it('splits traffic by canary weights within tolerance, idempotently', async () => {
    const p = provider();
    const canary = await runActivity(p.setCanaryWeights, {
      service: 'app',
      stable: 'blue',
      canary: 'green',
      canaryPercent: 25,
    });
    expect(canary.changed).toBe(true);
    expect(canary.current.active).toBeNull();
    expect(canary.current.weights).toEqual([
      { target: 'blue', percent: 75 },
      { target: 'green', percent: 25 },
    ]);
    const counts = await countLandings(frontendPort, 200);
    expect((counts['blue'] ?? 0) + (counts['green'] ?? 0)).toBe(200);
    expect(counts['green']).toBeGreaterThanOrEqual(40);
    expect(counts['green']).toBeLessThanOrEqual(60);

    const again = await runActivity(p.setCanaryWeights, {
      service: 'app',
      stable: 'blue',
      canary: 'green',
      canaryPercent: 25,
    });
    expect(again.changed).toBe(false);

    const full = await runActivity(p.setCanaryWeights, {
      service: 'app',
      stable: 'blue',
      canary: 'green',
      canaryPercent: 100,
    });
    expect(full.current.active).toBe('green');
    expect(await countLandings(frontendPort, 50)).toEqual({ green: 50 });
  });

  it('restores weights and administrative states exactly (drain, maint)', async () => {
    await admin.execute('set server app/green weight 30');
    await admin.execute('set server app/green state drain');
    const p = provider();
    const switched = await runActivity(p.switchTraffic, { service: 'app', to: 'green' });
    expect(switched.previous.snapshot).toEqual({
      provider: 'haproxy',
      backend: 'app',
      servers: [
        { server: 'blue', weight: 100, admin: 'ready' },
        { server: 'green', weight: 30, admin: 'drain' },
      ],
    });
    // a drained server takes no new users: its share in the neutral view is zero
    expect(switched.previous.weights).toEqual([
      { target: 'blue', percent: 100 },
      { target: 'green', percent: 0 },
    ]);
    expect(switched.current.snapshot).toMatchObject({
      servers: [
        { server: 'blue', weight: 0, admin: 'ready' },
        { server: 'green', weight: 100, admin: 'ready' },
      ],
    });
    await runActivity(p.restoreTrafficState, { service: 'app', state: switched.previous });
    const servers = await admin.showServersState('app');
    expect(servers.map(({ server, weight, admin: a }) => ({ server, weight, admin: a }))).toEqual([
      { server: 'blue', weight: 100, admin: 'ready' },
      { server: 'green', weight: 30, admin: 'drain' },
    ]);

    await admin.execute('set server app/green state maint');
    const fromMaint = await runActivity(p.switchTraffic, { service: 'app', to: 'green' });
    expect(fromMaint.previous.snapshot).toMatchObject({ servers: [{}, { server: 'green', admin: 'maint' }] });
    await runActivity(p.restoreTrafficState, { service: 'app', state: fromMaint.previous });
    expect((await admin.showServersState('app'))[1]).toMatchObject({
      server: 'green',
      admin: 'maint',
      weight: 30,
    });
  });

  it('maps a service and its logical targets onto a backend and servers', async () => {
    const p = createHaproxyTrafficActivities({
      socket: { path: adminSocketPath },
      services: { shop: { backend: 'app', targets: { stable: 'blue', candidate: 'green' } } },
    });
    const state = await runActivity(p.getTrafficState, { service: 'shop' });
    expect(state.weights).toEqual([
      { target: 'stable', percent: 100 },
      { target: 'candidate', percent: 0 },
    ]);
    const canary = await runActivity(p.setCanaryWeights, {
      service: 'shop',
      stable: 'stable',
      canary: 'candidate',
      canaryPercent: 50,
    });
    expect(canary.current.weights).toEqual([
      { target: 'stable', percent: 50 },
      { target: 'candidate', percent: 50 },
    ]);
    const counts = await countLandings(frontendPort, 100);
    expect(counts['blue']).toBeGreaterThanOrEqual(40);
    expect(counts['green']).toBeGreaterThanOrEqual(40);
  });

  it('refuses to send users to a server whose health check is down, and changes nothing', async () => {
    const before = await admin.showServersState('flaky');
    const p = createHaproxyTrafficActivities({
      socket: { host: '127.0.0.1', port: adminPort },
      services: { flaky: { targets: { green: 'dead' } } },
    });
    const switched = await expectFailure(
      runActivity(p.switchTraffic, { service: 'flaky', to: 'green' }),
      'UpstreamUnavailable',
      false,
    );
    expect(switched.message).toContain('flaky/dead');
    const canary = await expectFailure(
      runActivity(p.setCanaryWeights, {
        service: 'flaky',
        stable: 'blue',
        canary: 'green',
        canaryPercent: 10,
      }),
      'UpstreamUnavailable',
      false,
    );
    expect(canary.message).toContain('down');
    expect(await admin.showServersState('flaky')).toEqual(before);
  });

  it('answers mirroring honestly: not supported, and stopping it is a no-op', async () => {
    const p = provider();
    const f = await expectFailure(
      runActivity(p.mirrorTraffic, { service: 'app', to: 'green', percent: 10 }),
      'PolicyViolation',
      true,
    );
    expect(f.message).toMatch(/not supported by the HAProxy traffic provider/);
    const stopped = await runActivity(p.stopMirroring, { service: 'app' });
    expect(stopped.changed).toBe(false);
    expect(stopped.current.mirrors).toEqual([]);
  });

  it('classifies an unknown backend or server as NotFound', async () => {
    const p = provider();
    await expectFailure(runActivity(p.getTrafficState, { service: 'nosuch' }), 'NotFound', true);
    await expectFailure(runActivity(p.switchTraffic, { service: 'nosuch', to: 'green' }), 'NotFound', true);
    const unmapped = createHaproxyTrafficActivities({
      socket: { host: '127.0.0.1', port: adminPort },
      services: { app: { targets: { green: 'emerald' } } },
    });
    const f = await expectFailure(
      runActivity(unmapped.switchTraffic, { service: 'app', to: 'green' }),
      'NotFound',
      true,
    );
    expect(f.message).toContain('emerald');
    expect((await admin.showServersState('app')).map((s) => s.weight)).toEqual([100, 0]);
  });

  it('classifies an unreachable socket as UpstreamUnavailable (retryable)', async () => {
    const closed = createHaproxyTrafficActivities({ socket: { host: '127.0.0.1', port: await freePort() } });
    const f = await expectFailure(
      runActivity(closed.getTrafficState, { service: 'app' }),
      'UpstreamUnavailable',
      false,
    );
    expect(f.message).toContain('ECONNREFUSED');
    const missing = createHaproxyTrafficActivities({
      socket: { path: path.join(haproxy?.dir ?? '/nonexistent', 'absent.sock') },
    });
    await expectFailure(
      runActivity(missing.switchTraffic, { service: 'app', to: 'green' }),
      'UpstreamUnavailable',
      false,
    );
  });

  it('classifies a socket below level admin as Unauthorized and leaves the state alone', async () => {
    const user = createHaproxyTrafficActivities({ socket: { path: userSocketPath } });
    const state = await runActivity(user.getTrafficState, { service: 'app' });
    expect(state.active).toBe('blue');
    const f = await expectFailure(
      runActivity(user.switchTraffic, { service: 'app', to: 'green' }),
      'Unauthorized',
      true,
    );
    expect(f.message).toContain('level admin');
    expect((await admin.showServersState('app')).map((s) => s.weight)).toEqual([100, 0]);
  });

  it('rejects malformed input and foreign snapshots as InvalidInput', async () => {
    const p = provider();
    await expectFailure(
      runActivity(p.setCanaryWeights, {
        service: 'app',
        stable: 'blue',
        canary: 'green',
        canaryPercent: 150,
      }),
      'InvalidInput',
      true,
    );
    await expectFailure(
      runActivity(p.setCanaryWeights, { service: 'app', stable: 'blue', canary: 'blue', canaryPercent: 5 }),
      'InvalidInput',
      true,
    );
    await expectFailure(
      runActivity(p.switchTraffic, { service: 'app; disable server app/blue', to: 'green' }),
      'InvalidInput',
      true,
    );
    const foreign: TrafficState = {
      service: 'app',
      weights: [],
      active: null,
      mirrors: [],
      snapshot: { provider: 'dns', recordId: 'x', recordName: 'app.example', content: '192.0.2.1' },
    };
    await expectFailure(
      runActivity(p.restoreTrafficState, { service: 'app', state: foreign }),
      'InvalidInput',
      true,
    );
  });
});

describe('HAProxy runtime API transport', () => {
  let silent: net.Server;
  let silentPort: number;
  const held: net.Socket[] = [];

  beforeAll(async () => {
    // accepts connections and never answers: a hung HAProxy
    silent = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as net.AddressInfo).port;
  });

  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('bounds a command by its timeout (UpstreamUnavailable)', async () => {
    const p = createHaproxyTrafficActivities({
      socket: { host: '127.0.0.1', port: silentPort },
      timeoutMs: 200,
    });
    const f = await expectFailure(
      runActivity(p.getTrafficState, { service: 'app' }),
      'UpstreamUnavailable',
      false,
    );
    expect(f.message).toContain('did not answer');
  });

  it('stops waiting when the activity is cancelled', async () => {
    const p = createHaproxyTrafficActivities({
      socket: { host: '127.0.0.1', port: silentPort },
      timeoutMs: 30_000,
    });
    const env = new MockActivityEnvironment(undefined, { logger: quietLogger });
    const pending = env.run(p.switchTraffic, { service: 'app', to: 'green' } as const);
    await vi.waitFor(() => expect(held.length).toBeGreaterThan(0));
    env.cancel();
    await expect(pending).rejects.toBeInstanceOf(CancelledFailure);
  });
});
