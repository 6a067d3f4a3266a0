import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPlatformConfig } from '../../src/config/load-platform-config';
import type { PlatformConfig } from '../../src/config/platform-config';
import {
  ReleaseSettingsError,
  deriveReleaseSettings,
  fillQueryTemplate,
  logSelectorOf,
} from '../../src/domain/release-settings';

const example = (): PlatformConfig =>
  structuredClone(
    readPlatformConfig({ file: path.resolve(__dirname, '../../config/aceh-commerce.yaml'), env: {} }).config,
  );

describe('deriveReleaseSettings', () => {
  it('draws a production release from the shipped configuration', () => {
    const s = deriveReleaseSettings(example(), { hotfix: false });
    expect(s.productionEnvironment).toBe('production');
    expect(s.stagingEnvironment).toBe('staging');
    expect(s.strategy.type).toBe('blue-green');
    expect(s.stagingStrategy?.type).toBe('rolling');
    expect(s.services.map((x) => x.name)).toEqual([
      'storefront',
      'admin-panel',
      'auth-service',
      'api-gateway',
    ]);
    expect(s.services[1]).toMatchObject({
      staging: { application: 'admin-panel-staging', url: 'https://admin-staging.acehcommerce.id' },
      production: { url: 'https://admin.acehcommerce.id' },
    });
    expect(s.approval).toMatchObject({ required: true, requiredApprovals: 1, separationOfDuties: true });
    expect(s.approval.reminderIntervalMs).toBe(12 * 3_600_000);
    expect(s.monitoring).toMatchObject({ bakeTimeMs: 600_000, sampleIntervalMs: 60_000, maxErrorRate: 0.05 });
    expect(s.imageRepository).toBe('registry.luxima.id/aceh-commerce');
    expect(s.rpoMs).toBe(3_600_000);
    expect(s.qaReport).toBeNull();
  });

  it('carries the QA report of release.qaReport, its path still a template, its poll interval in ms', () => {
    const config = example();
    const raw = readPlatformConfig({
      file: path.resolve(__dirname, '../../config/aceh-commerce.yaml'),
      env: {
        ACEH_RELEASE__RELEASE__QAREPORT__PATH: '/srv/qa/${version}/report.json',
        ACEH_RELEASE__RELEASE__QAREPORT__FORMAT: 'postman',
      },
    }).config;
    expect(raw.release.qaReport).toEqual({
      path: '/srv/qa/${version}/report.json',
      format: 'postman',
      pollEvery: 300_000,
    });
    config.release.qaReport = { ...raw.release.qaReport!, pollEvery: 30_000 };
    expect(deriveReleaseSettings(config, { hotfix: false }).qaReport).toEqual({
      pathTemplate: '/srv/qa/${version}/report.json',
      format: 'postman',
      pollEveryMs: 30_000,
    });
  });

  it('picks an alternative strategy and the hotfix approval count', () => {
    const config = example();
    config.approval.requiredApprovals = 2;
    const s = deriveReleaseSettings(config, { strategy: 'canary', hotfix: true });
    expect(s.strategy).toMatchObject({ type: 'canary', steps: [5, 25, 50, 100] });
    expect(s.approval.requiredApprovals).toBe(1);
    expect(deriveReleaseSettings(config, { hotfix: false }).approval.requiredApprovals).toBe(2);
  });

  it.each([
    [
      'a strategy the environment does not offer',
      (c: PlatformConfig) => c,
      'rolling',
      /not configured for production/,
    ],
    [
      'a traffic strategy without a traffic provider',
      (c: PlatformConfig) => {
        delete c.systems.traffic;
        return c;
      },
      'blue-green',
      /needs systems.traffic/,
    ],
    [
      'a colour strategy with a single application',
      (c: PlatformConfig) => {
        c.services['storefront']!.deployments['production'] = { application: 'storefront-production' };
        return c;
      },
      'blue-green',
      /needs blue and green applications.*storefront/,
    ],
  ] as const)('refuses %s with advice', (_name, change, strategy, message) => {
    expect(() => deriveReleaseSettings(change(example()), { strategy, hotfix: false })).toThrow(
      ReleaseSettingsError,
    );
    expect(() => deriveReleaseSettings(change(example()), { strategy, hotfix: false })).toThrow(message);
  });
});

describe('LogQL templates', () => {
  it.each([
    ['{environment="production", service="api"} |~ "(?i)error"', '{environment="production", service="api"}'],
    ['{app="a}b"} |= "x"', '{app="a}b"}'],
    ['{app="a\\"}"} | json', '{app="a\\"}"}'],
    ['no selector', 'no selector'],
  ])('the selector of %s is %s', (query, selector) => {
    expect(logSelectorOf(query)).toBe(selector);
  });

  it('fills placeholders, unknown ones empty', () => {
    expect(
      fillQueryTemplate('{environment="${environment}", service="${service}", x="${other}"}', {
        environment: 'production',
        service: 'api',
      }),
    ).toBe('{environment="production", service="api", x=""}');
  });
});
