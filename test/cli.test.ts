/**
 * The `aceh-release` command line, run as people run it: by spawning `bin/aceh-release`. Exit codes,
 * output on stdout and stderr, the default file, ACEH_RELEASE_CONFIG, overrides and --json. A few cases
 * run `main` in-process as well.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { main, type CliIo } from '../src/cli';

const ROOT = path.join(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'aceh-release');
const EXAMPLE = fs.readFileSync(path.join(ROOT, 'config', 'aceh-commerce.yaml'), 'utf8');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aceh-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** The parent's environment without any aceh-release variables, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ACEH_RELEASE')) env[k] = v;
  return { ...env, ...extra };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], extraEnv: Record<string, string> = {}, cwd = ROOT): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(BIN, args, { cwd, env: cleanEnv(extraEnv), timeout: 45_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`cannot run ${BIN}: ${err.message}`));
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

const BAD = EXAMPLE.replace('domain: https://acehcommerce.id', 'domain: http://acehcommerce.id').replace(
  'requiredApprovals: 1\n  separationOfDuties',
  'requiredApprovals: five\n  separationOfDuties',
);

// Each run starts node and tsx (a second or two); the runs are independent, so they overlap.
describe.concurrent('bin/aceh-release', () => {
  it('is an executable launcher', ({ expect }) => {
    expect(fs.statSync(BIN).mode & 0o111).not.toBe(0);
    expect(fs.readFileSync(BIN, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('--help lists the command groups and exits 0', async ({ expect }) => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('Usage: aceh-release [options] [command]');
    expect(stdout).toContain('config');
    expect(stdout).toContain('ACEH_RELEASE_CONFIG');
  });

  it('validates the shipped example by default: ok with its warning, exit 0', async ({ expect }) => {
    const { code, stdout, stderr } = await run(['config', 'validate']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('ok: config/aceh-commerce.yaml (1 warning)');
    expect(lines[1]).toMatch(/^warning: recovery\.rpo: of 1h holds for rollbacks/);
    expect(lines).toHaveLength(2);
  });

  it('reads the file named by ACEH_RELEASE_CONFIG and prints each error with its path, exit 1', async ({
    expect,
  }) => {
    const file = write('bad.yaml', BAD);
    const { code, stdout, stderr } = await run(['config', 'validate'], { ACEH_RELEASE_CONFIG: file });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trimEnd().split('\n')).toEqual([
      `invalid: ${file} (2 errors, 0 warnings)`,
      'error: environments.production.domain: must be an https URL (H1: production is served over HTTPS only)',
      'error: approval.requiredApprovals: must be a whole number',
    ]);
  });

  it('--json prints one machine-readable document with the same exit code', async ({ expect }) => {
    const file = write('bad-json.yaml', BAD);
    const { code, stdout } = await run(['config', 'validate', file, '--json']);
    expect(code).toBe(1);
    expect(JSON.parse(stdout)).toEqual({
      ok: false,
      file,
      errors: [
        {
          path: 'environments.production.domain',
          message: 'must be an https URL (H1: production is served over HTTPS only)',
        },
        { path: 'approval.requiredApprovals', message: 'must be a whole number' },
      ],
      warnings: [],
      overrides: [],
    });
  });

  it('applies environment overrides, names them in errors, never prints their values', async ({ expect }) => {
    const env = {
      ACEH_RELEASE__systems__grafana__token: 'glsa_0123456789abcdef',
      ACEH_RELEASE__monitoring__bakeTime: '30s',
    };
    const { code, stderr } = await run(['config', 'validate'], env);
    expect(code).toBe(1);
    expect(stderr).toContain(
      'error: systems.grafana.token: is an inline secret: configuration holds only references; write {env: NAME} or {file: PATH} (set by ACEH_RELEASE__systems__grafana__token)',
    );
    expect(stderr).toContain(
      'error: monitoring.bakeTime: must be at least 1m (set by ACEH_RELEASE__monitoring__bakeTime)',
    );
    expect(stderr).not.toContain('glsa_0123456789abcdef');
  });

  it('exits 2 on a usage error', async ({ expect }) => {
    const { code, stderr } = await run(['config', 'validate', '--bogus']);
    expect(code).toBe(2);
    expect(stderr).toBe("error: unknown option '--bogus'\n(add --help for usage)\n");
  });

  it('exits 2 when the file cannot be read, naming it', async ({ expect }) => {
    const { code, stderr } = await run(['config', 'validate', 'nope.yaml']);
    expect(code).toBe(2);
    expect(stderr).toBe('aceh-release: cannot read configuration file nope.yaml: no such file\n');
  });
});

describe('main, in-process', () => {
  function io(env: Record<string, string> = {}) {
    const out = { stdout: '', stderr: '' };
    const cli: CliIo = {
      stdout: (t) => (out.stdout += t),
      stderr: (t) => (out.stderr += t),
      env,
    };
    return { cli, out };
  }

  it('runs the same program against injected streams and variables', async () => {
    const { cli, out } = io({ ACEH_RELEASE_CONFIG: path.join(ROOT, 'config', 'aceh-commerce.yaml') });
    expect(await main(['config', 'validate'], cli)).toBe(0);
    expect(out.stdout).toMatch(/^ok: .*aceh-commerce\.yaml \(1 warning\)\n/);
  });

  it('pluralizes the counts', async () => {
    const file = write('walarchive.yaml', EXAMPLE.replace('walArchiving: false', 'walArchiving: true'));
    const { cli, out } = io();
    expect(await main(['config', 'validate', file], cli)).toBe(0);
    expect(out.stdout).toBe(`ok: ${file} (0 warnings)\n`);
  });

  it('--json on a valid file lists the warnings and the overrides applied', async () => {
    const { cli, out } = io({ ACEH_RELEASE__monitoring__maxErrorRate: '0.03' });
    expect(
      await main(['config', 'validate', '--json', path.join(ROOT, 'config', 'aceh-commerce.yaml')], cli),
    ).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({
      ok: true,
      errors: [],
      warnings: [{ path: 'recovery.rpo' }],
      overrides: [{ variable: 'ACEH_RELEASE__monitoring__maxErrorRate', path: 'monitoring.maxErrorRate' }],
    });
  });

  it('--no-env-overrides checks the file as written', async () => {
    const { cli, out } = io({ ACEH_RELEASE__monitoring__bakeTime: '30s' });
    const file = path.join(ROOT, 'config', 'aceh-commerce.yaml');
    expect(await main(['config', 'validate', file], cli)).toBe(1);
    expect(await main(['config', 'validate', '--no-env-overrides', file], cli)).toBe(0);
    expect(out.stdout).toMatch(/^ok: /m);
  });

  it.each([
    [['config', 'validate', 'a.yaml', 'b.yaml'], 'error: too many arguments'],
    [['deploy'], "error: unknown command 'deploy'"],
    [[], 'Usage: aceh-release [options] [command]'],
    [['config'], 'Usage: aceh-release config [options] [command]'],
    [['config', 'validate', '--json=yes'], "error: unknown option '--json=yes'"],
  ])('exits 2 on the usage error %j', async (args, message) => {
    const { cli, out } = io();
    expect(await main(args, cli)).toBe(2);
    expect(out.stderr).toContain(message);
  });

  it('exits 0 for help of any command', async () => {
    for (const args of [['help'], ['help', 'config'], ['config', '--help'], ['config', 'help', 'validate']]) {
      const { cli, out } = io();
      expect(await main(args, cli)).toBe(0);
      expect(out.stdout).toContain('Usage: aceh-release');
    }
  });

  it('config validate --help describes the argument, the options and the exit status', async () => {
    const { cli, out } = io();
    expect(await main(['config', 'validate', '--help'], cli)).toBe(0);
    const stdout = out.stdout;
    expect(stdout).toContain('Usage: aceh-release config validate [options] [file]');
    expect(stdout).toContain('--json');
    expect(stdout).toContain('--no-env-overrides');
    expect(stdout).toContain('config/aceh-commerce.yaml');
    expect(stdout).toContain('Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error');
  });

  it('prefers the file argument, and validates JSON', async () => {
    const json = write('aceh.json', JSON.stringify(YAML.parse(EXAMPLE)));
    const { cli, out } = io({ ACEH_RELEASE_CONFIG: '/nonexistent.yaml' });
    expect(await main(['config', 'validate', json], cli)).toBe(0);
    expect(out.stdout.split('\n')[0]).toBe(`ok: ${json} (1 warning)`);
  });

  it('reports a YAML syntax error as an invalid configuration, exit 1', async () => {
    const file = write('syntax.yaml', 'version: 1\nenvironments: [\n');
    const { cli, out } = io();
    expect(await main(['config', 'validate', file], cli)).toBe(1);
    const stderr = out.stderr;
    expect(stderr).toMatch(
      /^invalid: .*syntax\.yaml \(1 error, 0 warnings\)\nerror: \(document\): is not valid YAML \(line \d+, column \d+\)/,
    );
  });

  it('--json on an unreadable file still prints JSON, exit 2', async () => {
    const { cli, out } = io();
    expect(await main(['config', 'validate', '--json', path.join(dir, 'missing.yaml')], cli)).toBe(2);
    expect(JSON.parse(out.stdout)).toMatchObject({
      ok: false,
      errors: [{ path: '', message: expect.stringContaining('no such file') as unknown }],
    });
  });
});
