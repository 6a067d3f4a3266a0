import { describe, expect, it } from 'vitest';
import { readPlatformConfig } from '../src/config/load-platform-config';
import { workerOptionsFrom } from '../src/worker';

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
