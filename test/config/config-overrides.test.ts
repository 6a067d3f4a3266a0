/**
 * Environment overrides (`ACEH_RELEASE__…`): path resolution, coercion by the schema, validation of the
 * result, and refusals that name the variable.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { applyEnvOverrides } from '../../src/config/config-overrides';
import { validatePlatformConfig } from '../../src/config/validate-platform-config';

const EXAMPLE_FILE = path.join(__dirname, '..', '..', 'config', 'aceh-commerce.yaml');
const example = YAML.parse(fs.readFileSync(EXAMPLE_FILE, 'utf8')) as unknown;

/** Applies `env` to the example and validates the result, as the loader does. */
function withEnv(env: Record<string, string>) {
  const overridden = applyEnvOverrides(example, env);
  const result = validatePlatformConfig(overridden.document, { sources: overridden.applied });
  return { ...overridden, result };
}

describe('environment overrides', () => {
  it('coerce a number, a duration, a boolean and a list by what the setting accepts', () => {
    const { result, applied, errors } = withEnv({
      ACEH_RELEASE__monitoring__maxErrorRate: '0.03',
      ACEH_RELEASE__monitoring__bakeTime: '15m',
      ACEH_RELEASE__database__walArchiving: 'true',
      ACEH_RELEASE__environments__production__alternativeStrategies__0__steps: '[1, 10, 50, 100]',
    });
    expect(errors).toEqual([]);
    expect(result.errors).toEqual([]);
    const c = result.config!;
    expect(c.monitoring.maxErrorRate).toBe(0.03);
    expect(c.monitoring.bakeTime).toBe(15 * 60_000);
    expect(c.database.walArchiving).toBe(true);
    expect(c.environments['production']!.alternativeStrategies[0]).toMatchObject({ steps: [1, 10, 50, 100] });
    expect(applied.map((a) => a.variable)).toEqual([
      'ACEH_RELEASE__database__walArchiving',
      'ACEH_RELEASE__environments__production__alternativeStrategies__0__steps',
      'ACEH_RELEASE__monitoring__bakeTime',
      'ACEH_RELEASE__monitoring__maxErrorRate',
    ]);
  });

  it('keep text that the setting accepts as text, even when it reads as a number', () => {
    const { result } = withEnv({ ACEH_RELEASE__systems__telegram__chatId: '-1009876543210' });
    expect(result.config!.systems.telegram.chatId).toBe('-1009876543210');
  });

  it('match keys ignoring case, and environment names against the file', () => {
    const { result, applied } = withEnv({
      ACEH_RELEASE__MONITORING__MAXERRORRATE: '0.02',
      ACEH_RELEASE__ENVIRONMENTS__PRODUCTION__STRATEGY__VERIFYFOR: '20m',
    });
    expect(result.errors).toEqual([]);
    expect(result.config!.monitoring.maxErrorRate).toBe(0.02);
    expect(result.config!.environments['production']!.strategy).toMatchObject({ verifyFor: 20 * 60_000 });
    expect(applied.map((a) => a.path)).toEqual([
      ['environments', 'production', 'strategy', 'verifyFor'],
      ['monitoring', 'maxErrorRate'],
    ]);
  });

  it('replace a credential reference with another reference', () => {
    const { result } = withEnv({ ACEH_RELEASE__systems__coolify__token: '{file: /run/secrets/coolify}' });
    expect(result.config!.systems.coolify.token).toEqual({ file: '/run/secrets/coolify' });
  });

  it('set a whole list, and one item of it', () => {
    const { result } = withEnv({
      ACEH_RELEASE__approval__approvers: '[rizki, dewi, fajar, sari]',
      ACEH_RELEASE__approval__requiredApprovals: '2',
    });
    expect(result.config!.approval).toMatchObject({
      approvers: ['rizki', 'dewi', 'fajar', 'sari'],
      requiredApprovals: 2,
    });
    const one = withEnv({ ACEH_RELEASE__approval__approvers__1: 'dewi' });
    expect(one.result.config!.approval.approvers).toEqual(['tech-lead', 'dewi', 'ops-lead']);
  });

  it('remove a setting with an empty value, so that its default applies', () => {
    const { result } = withEnv({ ACEH_RELEASE__environments__production__strategy__keepPreviousFor: '' });
    expect(result.config!.environments['production']!.strategy).toMatchObject({
      keepPreviousFor: 24 * 3_600_000,
    });
  });

  it('add an entry to a map of names', () => {
    const { result } = withEnv({
      ACEH_RELEASE__environments__production__domains__status: 'https://status.acehcommerce.id',
    });
    expect(result.errors).toEqual([]);
    expect(result.config!.environments['production']!.domains['status']).toBe(
      'https://status.acehcommerce.id',
    );
  });

  it('are validated like the file, and the finding names the variable', () => {
    const { result } = withEnv({ ACEH_RELEASE__monitoring__maxErrorRate: '5' });
    expect(result.ok).toBe(false);
    expect(result.errors).toEqual([
      {
        path: 'monitoring.maxErrorRate',
        message: 'must be a fraction at most 1: write 0.05 for 5%, not 5',
        source: 'ACEH_RELEASE__monitoring__maxErrorRate',
      },
    ]);
  });

  it('cannot make production plain http', () => {
    const { result } = withEnv({ ACEH_RELEASE__environments__production__domain: 'http://acehcommerce.id' });
    expect(result.errors).toContainEqual(
      expect.objectContaining({
        path: 'environments.production.domain',
        source: 'ACEH_RELEASE__environments__production__domain',
      }),
    );
  });

  it('cannot carry a secret: a plain value for a credential is refused, and not repeated', () => {
    const { result } = withEnv({ ACEH_RELEASE__systems__coolify__token: 'tok-0123456789abcdef' });
    expect(result.errors).toEqual([
      {
        path: 'systems.coolify.token',
        message:
          'is an inline secret: configuration holds only references; write {env: NAME} or {file: PATH}',
        source: 'ACEH_RELEASE__systems__coolify__token',
      },
    ]);
    expect(JSON.stringify(result)).not.toContain('tok-0123456789abcdef');
  });

  it('refuse a variable that names no setting, suggesting the likely one', () => {
    const { errors, applied } = withEnv({ ACEH_RELEASE__monitoring__maxErorRate: '0.03' });
    expect(applied).toEqual([]);
    expect(errors).toEqual([
      {
        path: 'monitoring.maxErorRate',
        message: 'is not a setting; did you mean maxErrorRate?',
        source: 'ACEH_RELEASE__monitoring__maxErorRate',
      },
    ]);
  });

  it('refuse descending into a single value, a bad list index, and a malformed name', () => {
    const { errors } = withEnv({
      ACEH_RELEASE__monitoring__bakeTime__minutes: '3',
      ACEH_RELEASE__approval__approvers__first: 'x',
      ACEH_RELEASE__approval__approvers__9: 'x',
      ACEH_RELEASE____monitoring: 'x',
      ACEH_RELEASE__recovery__rto__hours: '1',
    });
    expect(errors).toEqual([
      {
        path: '',
        message: expect.stringContaining('is not an override: write ACEH_RELEASE__<key>__<key>') as unknown,
        source: 'ACEH_RELEASE____monitoring',
      },
      {
        path: 'approval.approvers',
        message: 'is a list: address an item by index 0-3, not "9"',
        source: 'ACEH_RELEASE__approval__approvers__9',
      },
      {
        path: 'approval.approvers',
        message: 'is a list: address an item by index 0-3, not "first"',
        source: 'ACEH_RELEASE__approval__approvers__first',
      },
      {
        path: 'monitoring.bakeTime',
        message: 'holds a single value in the file; it has no settings inside',
        source: 'ACEH_RELEASE__monitoring__bakeTime__minutes',
      },
      {
        path: 'recovery.rto',
        message: 'is a single value; it has no setting "hours"',
        source: 'ACEH_RELEASE__recovery__rto__hours',
      },
    ]);
  });

  it('ignore other variables, ACEH_RELEASE_CONFIG included, and leave the document untouched', () => {
    const before = structuredClone(example);
    const out = applyEnvOverrides(example, {
      ACEH_RELEASE_CONFIG: 'x.yaml',
      PATH: '/usr/bin',
      ACEH_RELEASE__monitoring__bakeTime: '20m',
    });
    expect(out.applied).toEqual([
      { variable: 'ACEH_RELEASE__monitoring__bakeTime', path: ['monitoring', 'bakeTime'] },
    ]);
    expect(example).toEqual(before);
    expect(applyEnvOverrides(example, { PATH: '/usr/bin' }).document).toBe(example);
  });

  it('cannot apply to a document that is not a mapping', () => {
    const out = applyEnvOverrides(['a'], { ACEH_RELEASE__version: '1' });
    expect(out.errors).toEqual([
      {
        path: '',
        message: 'cannot apply: the configuration is not a mapping of settings',
        source: 'ACEH_RELEASE__version',
      },
    ]);
  });
});
