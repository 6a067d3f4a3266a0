/**
 * The Traefik file-provider traffic provider against real files in a temporary directory. No Traefik
 * binary is involved: the tests check the YAML structure the file provider documents (weighted services,
 * mirroring), that other content survives, idempotency, exact restores, and that writes are atomic to a
 * reader in another process.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import YAML from 'yaml';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createTraefikFileTrafficActivities,
  type TraefikFileSystem,
} from '../../../src/activities/traffic/traefik-file';
import { expectFailure, quietLogger, runActivity } from './traffic-test-support';

const BASE_CONFIG = `# Dynamic configuration, also edited by hand
http:
  routers:
    web:
      rule: Host(\`acehcommerce.id\`) # production
      service: web
      tls:
        certResolver: le
    api:
      rule: Host(\`api.acehcommerce.id\`)
      service: api
  middlewares:
    secure-headers:
      headers:
        stsSeconds: 31536000
  services:
    api:
      loadBalancer:
        servers:
          - url: http://10.0.0.5:8080
    web-blue:
      loadBalancer:
        servers:
          - url: http://10.0.0.10:3000
    web-green:
      loadBalancer:
        servers:
          - url: http://10.0.0.11:3000
    web-shadow:
      loadBalancer:
        servers:
          - url: http://10.0.0.12:3000
tls:
  options:
    modern:
      minVersion: VersionTLS13
`;

let dir: string;
let file: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'traefik-traffic-'));
  file = path.join(dir, 'dynamic.yml');
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const provider = (extra: Partial<Parameters<typeof createTraefikFileTrafficActivities>[0]> = {}) =>
  createTraefikFileTrafficActivities({ filePath: file, ...extra });

function readConfig(): Record<string, unknown> {
  return YAML.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

function services(): Record<string, unknown> {
  return (readConfig()['http'] as { services: Record<string, unknown> }).services;
}

/** Everything in the file except the entries the provider manages for `web`. */
function unmanaged(config: Record<string, unknown>): unknown {
  const copy = structuredClone(config) as { http: { services: Record<string, unknown> } };
  delete copy.http.services['web'];
  delete copy.http.services['web-weighted'];
  return copy;
}

describe('Traefik file provider: blue-green and canary', () => {
  it('switches to a colour by weights, keeps every other router, service and comment', async () => {
    fs.writeFileSync(file, BASE_CONFIG);
    const before = readConfig();
    const p = provider();

    const blue = await runActivity(p.switchTraffic, { service: 'web', to: 'blue' });
    expect(blue.changed).toBe(true);
    expect(blue.previous).toMatchObject({
      weights: [],
      active: null,
      mirrors: [],
      snapshot: { provider: 'traefik', services: { web: null, 'web-weighted': null } },
    });
    expect(blue.current.active).toBe('blue');
    expect(services()['web']).toEqual({ weighted: { services: [{ name: 'web-blue', weight: 100 }] } });

    const green = await runActivity(p.switchTraffic, { service: 'web', to: 'green' });
    expect(green.previous.active).toBe('blue');
    expect(green.current.active).toBe('green');
    expect(green.current.weights).toEqual([
      { target: 'blue', percent: 0 },
      { target: 'green', percent: 100 },
    ]);
    expect(services()['web']).toEqual({
      weighted: {
        services: [
          { name: 'web-blue', weight: 0 },
          { name: 'web-green', weight: 100 },
        ],
      },
    });
    expect(unmanaged(readConfig())).toEqual(unmanaged(before));
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain('# Dynamic configuration, also edited by hand');
    expect(text).toContain('# production');
  });

  it('is a no-op when the state already holds: the file is not rewritten', async () => {
    fs.writeFileSync(file, BASE_CONFIG);
    const p = provider();
    const first = await runActivity(p.switchTraffic, { service: 'web', to: 'green' });
    const inode = fs.statSync(file).ino;
    const content = fs.readFileSync(file, 'utf8');

    const again = await runActivity(p.switchTraffic, { service: 'web', to: 'green' });
    expect(again.changed).toBe(false);
    expect(again.previous).toEqual(first.current);
    expect(fs.statSync(file).ino).toBe(inode);
    expect(fs.readFileSync(file, 'utf8')).toBe(content);
  });

  it('treats a definition that differs only in key order as already applied', async () => {
    fs.writeFileSync(
      file,
      'http:\n  services:\n    web:\n      weighted:\n        services:\n          - weight: 100\n            name: web-green\n',
    );
    const inode = fs.statSync(file).ino;
    const result = await runActivity(provider().switchTraffic, { service: 'web', to: 'green' });
    expect(result.changed).toBe(false);
    expect(fs.statSync(file).ino).toBe(inode);
  });

  it('sets canary weights, idempotently, and restores the previous state exactly', async () => {
    fs.writeFileSync(file, BASE_CONFIG);
    const p = provider();
    await runActivity(p.switchTraffic, { service: 'web', to: 'blue' });
    const original = fs.readFileSync(file, 'utf8');

    const canary = await runActivity(p.setCanaryWeights, {
      service: 'web',
      stable: 'blue',
      canary: 'green',
      canaryPercent: 25,
    });
    expect(canary.changed).toBe(true);
    expect(canary.current.weights).toEqual([
      { target: 'blue', percent: 75 },
      { target: 'green', percent: 25 },
    ]);
    expect(services()['web']).toEqual({
      weighted: {
        services: [
          { name: 'web-blue', weight: 75 },
          { name: 'web-green', weight: 25 },
        ],
      },
    });
    const again = await runActivity(p.setCanaryWeights, {
      service: 'web',
      stable: 'blue',
      canary: 'green',
      canaryPercent: 25,
    });
    expect(again.changed).toBe(false);

    const restored = await runActivity(p.restoreTrafficState, { service: 'web', state: canary.previous });
    expect(restored.changed).toBe(true);
    expect(restored.current).toEqual(canary.previous);
    expect(fs.readFileSync(file, 'utf8')).toBe(original);
  });

  it('restores a service that was absent by removing it, and creates a missing file', async () => {
    const p = provider();
    const created = await runActivity(p.switchTraffic, { service: 'web', to: 'green' });
    expect(fs.existsSync(file)).toBe(true);
    const restored = await runActivity(p.restoreTrafficState, { service: 'web', state: created.previous });
    expect(restored.changed).toBe(true);
    expect(services()['web']).toBeUndefined();
    const state = await runActivity(p.getTrafficState, { service: 'web' });
    expect(state.weights).toEqual([]);
  });

  it('keeps extra settings of the weighted service (sticky cookie) and maps targets to configured names', async () => {
    fs.writeFileSync(
      file,
      [
        'http:',
        '  services:',
        '    shop:',
        '      weighted:',
        '        sticky:',
        '          cookie:',
        '            name: lb',
        '        services:',
        '          - name: shop-a@docker',
        '            weight: 1',
        '',
      ].join('\n'),
    );
    const p = provider({
      services: { shop: { targets: { blue: 'shop-a@docker', green: 'shop-b@docker' } } },
    });
    const before = await runActivity(p.getTrafficState, { service: 'shop' });
    expect(before.active).toBe('blue');
    const result = await runActivity(p.switchTraffic, { service: 'shop', to: 'green' });
    expect(result.current.active).toBe('green');
    expect(services()['shop']).toEqual({
      weighted: {
        sticky: { cookie: { name: 'lb' } },
        services: [
          { name: 'shop-a@docker', weight: 0 },
          { name: 'shop-b@docker', weight: 100 },
        ],
      },
    });
  });
});

describe('Traefik file provider: shadow mirroring', () => {
  it('mirrors a percentage to the shadow without letting it serve, and stops again', async () => {
    fs.writeFileSync(file, BASE_CONFIG);
    const p = provider();
    await runActivity(p.switchTraffic, { service: 'web', to: 'blue' });
    const beforeMirror = fs.readFileSync(file, 'utf8');

    const mirrored = await runActivity(p.mirrorTraffic, { service: 'web', to: 'shadow', percent: 10 });
    expect(mirrored.changed).toBe(true);
    expect(mirrored.current.mirrors).toEqual([{ target: 'shadow', percent: 10 }]);
    expect(mirrored.current.weights).toEqual([{ target: 'blue', percent: 100 }]);
    expect(mirrored.current.active).toBe('blue');
    expect(services()['web']).toEqual({
      mirroring: { service: 'web-weighted', mirrors: [{ name: 'web-shadow', percent: 10 }] },
    });
    expect(services()['web-weighted']).toEqual({
      weighted: { services: [{ name: 'web-blue', weight: 100 }] },
    });

    const again = await runActivity(p.mirrorTraffic, { service: 'web', to: 'shadow', percent: 10 });
    expect(again.changed).toBe(false);

    // switching colour while mirroring keeps the mirror
    const switched = await runActivity(p.switchTraffic, { service: 'web', to: 'green' });
    expect(switched.current.mirrors).toEqual([{ target: 'shadow', percent: 10 }]);
    expect(switched.current.active).toBe('green');

    const stopped = await runActivity(p.stopMirroring, { service: 'web' });
    expect(stopped.changed).toBe(true);
    expect(stopped.current.mirrors).toEqual([]);
    expect(services()['web-weighted']).toBeUndefined();
    expect(services()['web']).toEqual({
      weighted: {
        services: [
          { name: 'web-blue', weight: 0 },
          { name: 'web-green', weight: 100 },
        ],
      },
    });
    const stoppedAgain = await runActivity(p.stopMirroring, { service: 'web' });
    expect(stoppedAgain.changed).toBe(false);

    // the compensation of mirrorTraffic puts the file back as it was before the mirror
    await runActivity(p.restoreTrafficState, { service: 'web', state: mirrored.previous });
    expect(fs.readFileSync(file, 'utf8')).toBe(beforeMirror);
  });

  it('refuses to mirror when nothing serves the service (NotFound) or when the shadow serves users', async () => {
    fs.writeFileSync(file, BASE_CONFIG);
    const p = provider();
    await expectFailure(
      runActivity(p.mirrorTraffic, { service: 'web', to: 'shadow', percent: 5 }),
      'NotFound',
      true,
    );
    await runActivity(p.setCanaryWeights, {
      service: 'web',
      stable: 'blue',
      canary: 'shadow',
      canaryPercent: 5,
    });
    const f = await expectFailure(
      runActivity(p.mirrorTraffic, { service: 'web', to: 'shadow', percent: 5 }),
      'PolicyViolation',
      true,
    );
    expect(f.message).toContain('never serve users');
  });
});

describe('Traefik file provider: failures', () => {
  it('will not replace a loadBalancer service (PolicyViolation) and leaves the file alone', async () => {
    fs.writeFileSync(file, BASE_CONFIG);
    const f = await expectFailure(
      runActivity(provider().switchTraffic, { service: 'api', to: 'green' }),
      'PolicyViolation',
      true,
    );
    expect(f.message).toContain('loadBalancer');
    expect(fs.readFileSync(file, 'utf8')).toBe(BASE_CONFIG);
  });

  it('classifies a file that is not YAML, or a malformed service, as ContractViolation', async () => {
    fs.writeFileSync(file, 'http:\n  services: [unclosed\n');
    await expectFailure(
      runActivity(provider().getTrafficState, { service: 'web' }),
      'ContractViolation',
      true,
    );
    fs.writeFileSync(file, '- just\n- a list\n');
    await expectFailure(
      runActivity(provider().switchTraffic, { service: 'web', to: 'blue' }),
      'ContractViolation',
      true,
    );
    fs.writeFileSync(
      file,
      'http:\n  services:\n    web:\n      weighted:\n        services:\n          - weight: heavy\n',
    );
    await expectFailure(
      runActivity(provider().getTrafficState, { service: 'web' }),
      'ContractViolation',
      true,
    );
  });

  it('classifies file system errors: missing directory NotFound, permissions Unauthorized, others retryable', async () => {
    const missing = createTraefikFileTrafficActivities({ filePath: path.join(dir, 'nope', 'dynamic.yml') });
    await expectFailure(runActivity(missing.switchTraffic, { service: 'web', to: 'blue' }), 'NotFound', true);

    fs.writeFileSync(file, BASE_CONFIG);
    const denied: TraefikFileSystem = {
      ...fsp,
      open: () => Promise.reject(Object.assign(new Error('permission denied'), { code: 'EACCES' })),
    };
    await expectFailure(
      runActivity(provider({ fileSystem: denied }).switchTraffic, { service: 'web', to: 'blue' }),
      'Unauthorized',
      true,
    );
    const unreadable: TraefikFileSystem = {
      ...fsp,
      readFile: () => Promise.reject(Object.assign(new Error('i/o error'), { code: 'EIO' })),
    };
    await expectFailure(
      runActivity(provider({ fileSystem: unreadable }).getTrafficState, { service: 'web' }),
      'UpstreamUnavailable',
      false,
    );
    expect(fs.readFileSync(file, 'utf8')).toBe(BASE_CONFIG);
  });

  it('leaves the old file and no temporary file behind when the rename fails', async () => {
    fs.writeFileSync(file, BASE_CONFIG);
    const failingRename: TraefikFileSystem = {
      ...fsp,
      rename: () => Promise.reject(Object.assign(new Error('no space'), { code: 'ENOSPC' })),
    };
    await expectFailure(
      runActivity(provider({ fileSystem: failingRename }).switchTraffic, { service: 'web', to: 'blue' }),
      'UpstreamUnavailable',
      false,
    );
    expect(fs.readFileSync(file, 'utf8')).toBe(BASE_CONFIG);
    expect(fs.readdirSync(dir)).toEqual(['dynamic.yml']);
  });

  it('does not write once the activity is cancelled', async () => {
    fs.writeFileSync(file, BASE_CONFIG);
    const env = new MockActivityEnvironment(undefined, { logger: quietLogger });
    env.cancel();
    await expect(
      env.run(provider().switchTraffic, { service: 'web', to: 'blue' } as const),
    ).rejects.toBeInstanceOf(CancelledFailure);
    expect(fs.readFileSync(file, 'utf8')).toBe(BASE_CONFIG);
    expect(fs.readdirSync(dir)).toEqual(['dynamic.yml']);
  });

  it('rejects malformed input and snapshots of other services as InvalidInput', async () => {
    fs.writeFileSync(file, BASE_CONFIG);
    const p = provider();
    await expectFailure(
      runActivity(p.mirrorTraffic, { service: 'web', to: 'shadow', percent: 0 }),
      'InvalidInput',
      true,
    );
    await expectFailure(
      runActivity(p.switchTraffic, { service: 'web', to: 'purple' as 'blue' }),
      'InvalidInput',
      true,
    );
    const apiState = await runActivity(p.getTrafficState, { service: 'web' });
    await expectFailure(
      runActivity(p.restoreTrafficState, {
        service: 'web',
        state: { ...apiState, snapshot: { provider: 'traefik', services: { api: null } } },
      }),
      'InvalidInput',
      true,
    );
    expect(fs.readFileSync(file, 'utf8')).toBe(BASE_CONFIG);
  });
});

describe('Traefik file provider: atomic writes', () => {
  /** A big file, so that a write in place would be visible half-done. */
  function bigConfig(): string {
    const routers = Array.from(
      { length: 400 },
      (_, i) => `    r${i}:\n      rule: Host(\`h${i}.acehcommerce.id\`)\n      service: api`,
    );
    return `http:\n  routers:\n${routers.join('\n')}\n  services:\n    api:\n      loadBalancer:\n        servers:\n          - url: http://10.0.0.5:8080\ntls:\n  options:\n    last:\n      minVersion: VersionTLS12\n`;
  }

  /**
   * A reader in another process that reads the file in a loop until its stdin closes; it prints `torn`
   * for every read that is not a whole file, then `done <reads> <torn>`.
   */
  function startReader(): { child: ChildProcessWithoutNullStreams; output: () => string } {
    const script = `
      const fs = require('node:fs');
      const file = process.argv[1];
      let reads = 0, torn = 0, stop = false;
      process.stdin.on('end', () => { stop = true; });
      process.stdin.resume();
      process.stdout.write('ready\\n');
      const loop = () => {
        if (stop) { process.stdout.write('done ' + reads + ' ' + torn + '\\n'); return; }
        for (let i = 0; i < 20; i++) {
          const text = fs.readFileSync(file, 'utf8');
          reads++;
          if (!text.startsWith('http:') || !text.endsWith('minVersion: VersionTLS12\\n')) {
            torn++;
            process.stdout.write('torn\\n');
          }
        }
        setImmediate(loop);
      };
      loop();`;
    const child = spawn(process.execPath, ['-e', script, file], { stdio: 'pipe' });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => (out += c));
    return { child, output: () => out };
  }

  async function stopReader(
    reader: ReturnType<typeof startReader>,
  ): Promise<{ reads: number; torn: number }> {
    reader.child.stdin.end();
    await vi.waitFor(() => expect(reader.output()).toMatch(/done \d+ \d+/), { timeout: 10_000 });
    const match = /done (\d+) (\d+)/.exec(reader.output());
    return { reads: Number(match?.[1]), torn: Number(match?.[2]) };
  }

  it('a reader in another process sees the old file or the new one, never part of one', async () => {
    fs.writeFileSync(file, bigConfig());
    const reader = startReader();
    await vi.waitFor(() => expect(reader.output()).toContain('ready'), { timeout: 10_000 });
    const p = provider();
    for (let i = 0; i < 20; i++) {
      await runActivity(p.setCanaryWeights, {
        service: 'web',
        stable: 'blue',
        canary: 'green',
        canaryPercent: i % 2 === 0 ? 10 : 20,
      });
    }
    const { reads, torn } = await stopReader(reader);
    expect(reads).toBeGreaterThan(0);
    expect(torn).toBe(0);
    expect(fs.readdirSync(dir)).toEqual(['dynamic.yml']);
  });

  it('(control) the same reader does see a file written in place half-way', async () => {
    const text = bigConfig();
    fs.writeFileSync(file, text);
    const reader = startReader();
    await vi.waitFor(() => expect(reader.output()).toContain('ready'), { timeout: 10_000 });
    const handle = await fsp.open(file, 'r+');
    await handle.truncate(0);
    await handle.write(text.slice(0, text.length / 2), 0);
    await vi.waitFor(() => expect(reader.output()).toContain('torn'), { timeout: 10_000 });
    await handle.write(text.slice(text.length / 2), text.length / 2);
    await handle.close();
    const { torn } = await stopReader(reader);
    expect(torn).toBeGreaterThan(0);
  });

  it('concurrent changes of different services in one file lose nothing', async () => {
    fs.writeFileSync(file, BASE_CONFIG);
    const p = provider();
    const names = Array.from({ length: 12 }, (_, i) => `svc${i}`);
    await Promise.all(names.map((service) => runActivity(p.switchTraffic, { service, to: 'green' })));
    const all = services();
    for (const service of names) {
      expect(all[service]).toEqual({ weighted: { services: [{ name: `${service}-green`, weight: 100 }] } });
    }
    expect(all['api']).toBeDefined();
  });
});
