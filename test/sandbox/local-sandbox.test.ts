/**
 * The sandbox as `npm start` runs it: the on/off switch, a fresh directory, the configuration of the
 * process as its base, the demo images, and the hint.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigFileError } from '../../src/config/load-platform-config';
import { DEMO_VERSIONS, sandboxEnabled, startLocalSandbox } from '../../src/sandbox/local-sandbox';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aceh-local-sandbox-'));

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('sandboxEnabled', () => {
  it.each([
    [undefined, true],
    ['', true],
    ['on', true],
    ['true', true],
    ['1', true],
    ['off', false],
    ['false', false],
    ['0', false],
    ['no', false],
  ])('ACEH_RELEASE_SANDBOX=%s -> %s', (value, expected) => {
    expect(sandboxEnabled({ ACEH_RELEASE_SANDBOX: value })).toBe(expected);
  });

  it('refuses a value that is neither on nor off, naming the variable', () => {
    expect(() => sandboxEnabled({ ACEH_RELEASE_SANDBOX: 'maybe' })).toThrow(
      /ACEH_RELEASE_SANDBOX must be on or off/,
    );
  });
});

describe('startLocalSandbox', () => {
  it('wipes the directory, applies the overrides of the process, pushes the demo images', async () => {
    const dir = path.join(root, 'sandbox');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'stale.txt'), 'from an earlier run');
    const logged: string[] = [];
    const { sandbox, where, hint } = await startLocalSandbox({
      dir,
      env: { ACEH_RELEASE__monitoring__maxErrorRate: '0.03' },
      log: (line) => logged.push(line),
      postgres: false,
    });
    try {
      expect(fs.existsSync(path.join(dir, 'stale.txt'))).toBe(false);
      expect(sandbox.config.monitoring.maxErrorRate).toBe(0.03);
      expect(sandbox.fakes.registry.tags()).toEqual(['1.1.0', ...DEMO_VERSIONS]);
      expect(where.join('\n')).toContain(sandbox.fakes.coolify.baseUrl);
      expect(hint).toHaveLength(4);
      expect(hint[1]).toBe(
        `  npx aceh-release release start 1.2.0 --commit ${sandbox.commit} --requested-by alice`,
      );
      expect(logged.some((l) => l.startsWith('sandbox: started'))).toBe(true);
    } finally {
      await sandbox.stop();
    }
  }, 60_000);

  it('reads the configuration before touching the directory: a missing file leaves it alone', async () => {
    const dir = path.join(root, 'kept');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'keep.txt'), 'x');
    await expect(
      startLocalSandbox({
        dir,
        env: { ACEH_RELEASE_CONFIG: path.join(root, 'no-such-config.yaml') },
        log: () => undefined,
        postgres: false,
      }),
    ).rejects.toBeInstanceOf(ConfigFileError);
    expect(fs.existsSync(path.join(dir, 'keep.txt'))).toBe(true);
  });
});
