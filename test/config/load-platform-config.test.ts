/**
 * Loading a configuration file: YAML or JSON by extension or content, syntax errors with positions,
 * environment overrides, unreadable files.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigFileError,
  DEFAULT_CONFIG_FILE,
  PlatformConfigError,
  configFilePath,
  detectFormat,
  loadPlatformConfig,
  parseConfigText,
  readPlatformConfig,
} from '../../src/config/load-platform-config';

const EXAMPLE_FILE = path.join(__dirname, '..', '..', 'config', 'aceh-commerce.yaml');
const exampleText = fs.readFileSync(EXAMPLE_FILE, 'utf8');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aceh-config-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('loadPlatformConfig', () => {
  it('reads the shipped YAML file', () => {
    const result = loadPlatformConfig({ file: EXAMPLE_FILE });
    expect(result).toMatchObject({ ok: true, file: EXAMPLE_FILE, errors: [], overrides: [] });
    expect(result.config?.organization.name).toBe('Aceh Commerce');
  });

  it('reads the same configuration as JSON, by extension and by content', () => {
    const json = JSON.stringify(YAML.parse(exampleText));
    const byExtension = loadPlatformConfig({ file: write('aceh.json', json) });
    const byContent = loadPlatformConfig({ file: write('aceh.conf', json) });
    const yaml = loadPlatformConfig({ file: EXAMPLE_FILE });
    expect(byExtension.config).toEqual(yaml.config);
    expect(byContent.config).toEqual(yaml.config);
    expect(detectFormat('aceh.conf', '  {"version": 1}')).toBe('json');
    expect(detectFormat('aceh.conf', 'version: 1')).toBe('yaml');
    expect(detectFormat('aceh.YML', '{}')).toBe('yaml');
  });

  it('reports a YAML syntax error with its line and column', () => {
    const result = loadPlatformConfig({
      file: write('broken.yaml', 'version: 1\nenvironments:\n  production: [\n'),
    });
    expect(result.ok).toBe(false);
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]!.path).toBe('');
    expect(result.errors[0]!.message).toMatch(/^is not valid YAML \(line \d+, column \d+\): /);
  });

  it('refuses a key written twice in YAML', () => {
    const result = loadPlatformConfig({ file: write('twice.yaml', 'version: 1\nversion: 2\n') });
    expect(result.errors[0]!.message).toMatch(/^is not valid YAML \(line 2, column 1\): .*[Uu]nique/);
  });

  it('reports a JSON syntax error', () => {
    const result = loadPlatformConfig({ file: write('broken.json', '{"version": 1,}') });
    expect(result.errors[0]!.message).toMatch(/^is not valid JSON: /);
  });

  it('applies environment overrides before validating, and lists them', () => {
    const result = loadPlatformConfig({
      file: EXAMPLE_FILE,
      env: { ACEH_RELEASE__monitoring__maxErrorRate: '0.03', HOME: '/root' },
    });
    expect(result.ok).toBe(true);
    expect(result.config?.monitoring.maxErrorRate).toBe(0.03);
    expect(result.overrides).toEqual([
      { variable: 'ACEH_RELEASE__monitoring__maxErrorRate', path: ['monitoring', 'maxErrorRate'] },
    ]);
  });

  it('counts a bad override variable as an error of the configuration', () => {
    const result = loadPlatformConfig({ file: EXAMPLE_FILE, env: { ACEH_RELEASE__nonsense: '1' } });
    expect(result.ok).toBe(false);
    expect(result.config).toBeUndefined();
    expect(result.errors[0]).toMatchObject({ path: 'nonsense', source: 'ACEH_RELEASE__nonsense' });
  });

  it('throws ConfigFileError for a file it cannot read', () => {
    expect(() => loadPlatformConfig({ file: path.join(dir, 'missing.yaml') })).toThrow(ConfigFileError);
    expect(() => loadPlatformConfig({ file: path.join(dir, 'missing.yaml') })).toThrow(
      /cannot read configuration file .*missing\.yaml: no such file/,
    );
    expect(() => loadPlatformConfig({ file: dir })).toThrow(/it is a directory/);
  });

  it('names the file: argument, then ACEH_RELEASE_CONFIG, then the default', () => {
    expect(configFilePath('a.yaml', { ACEH_RELEASE_CONFIG: 'b.yaml' })).toBe('a.yaml');
    expect(configFilePath(undefined, { ACEH_RELEASE_CONFIG: 'b.yaml' })).toBe('b.yaml');
    expect(configFilePath(undefined, { ACEH_RELEASE_CONFIG: '' })).toBe(DEFAULT_CONFIG_FILE);
    expect(configFilePath(undefined, {})).toBe('config/aceh-commerce.yaml');
  });
});

describe('readPlatformConfig', () => {
  it('returns the configuration and its warnings', () => {
    const { config, warnings } = readPlatformConfig({ file: EXAMPLE_FILE });
    expect(config.version).toBe(1);
    expect(warnings.map((w) => w.path)).toEqual(['recovery.rpo']);
  });

  it('throws PlatformConfigError listing every error', () => {
    const file = write(
      'bad.yaml',
      exampleText.replace('domain: https://acehcommerce.id', 'domain: http://acehcommerce.id'),
    );
    let thrown: unknown;
    try {
      readPlatformConfig({ file, env: { ACEH_RELEASE__monitoring__maxErrorRate: '5' } });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PlatformConfigError);
    expect((thrown as Error).message).toBe(
      `invalid configuration ${file}:\n` +
        '  environments.production.domain: must be an https URL (H1: production is served over HTTPS only)\n' +
        '  monitoring.maxErrorRate: must be a fraction at most 1: write 0.05 for 5%, not 5 (set by ACEH_RELEASE__monitoring__maxErrorRate)',
    );
  });

  it('parses text without touching the disk', () => {
    expect(parseConfigText('a: [1, 2]', 'x.yaml')).toEqual({ document: { a: [1, 2] } });
  });
});
