import { describe, expect, it } from 'vitest';
import { readPlatformConfig } from '../src/config/load-platform-config';
import { isLoopbackAddress, workerOptionsFrom } from '../src/worker';

describe('workerOptionsFrom', () => {
  const { config } = readPlatformConfig({ file: 'config/aceh-commerce.yaml' });

  it('takes a platform configuration as before, and options as they are', () => {
    expect(workerOptionsFrom(config)).toEqual({ config });
    const options = { config, credentials: { env: { COOLIFY_TOKEN: 't' } }, local: { gitDir: '/tmp/g' } };
    expect(workerOptionsFrom(options)).toBe(options);
    expect(workerOptionsFrom({ local: { snapshotDir: '/tmp/s' } })).toEqual({
      local: { snapshotDir: '/tmp/s' },
    });
  });

  it('gives no options for nothing, so the worker reads its configuration and the environment', () => {
    expect(workerOptionsFrom(undefined)).toEqual({});
  });
});

describe('isLoopbackAddress (the worker compresses requests to any other server)', () => {
  it.each(['127.0.0.1:7233', '127.4.5.6:80', 'localhost:7233', 'LOCALHOST:1', '[::1]:7233'])(
    '%s is on this machine',
    (address) => expect(isLoopbackAddress(address)).toBe(true),
  );
  it.each([
    'temporal.example:7233',
    'aceh.tmprl.cloud:7233',
    '10.0.0.5:7233',
    '128.0.0.1:7233',
    '127.0.0.1.example:7233',
    'localhost.example:7233',
    '[::2]:7233',
  ])('%s is not', (address) => expect(isLoopbackAddress(address)).toBe(false));
});
