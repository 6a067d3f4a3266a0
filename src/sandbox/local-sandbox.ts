/**
 * The sandbox as `npm start` runs it: a fresh directory, the platform configuration the worker would read
 * (file and `ACEH_RELEASE__…` overrides) as its base, two demo images in the registry, and the lines that
 * tell a person what runs where and how to try a release.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { configFilePath, readPlatformConfig } from '../config/load-platform-config';
import { formatIssue } from '../config/validate-platform-config';
import { SANDBOX_PREVIOUS_VERSION, startSandbox, type Sandbox } from './sandbox';

/** The variable that turns the sandbox of `npm start` off (`off`, `false`, `0`, `no`). */
export const SANDBOX_SWITCH = 'ACEH_RELEASE_SANDBOX';

/** Versions pushed to the registry at start, so that a demo release finds its image. */
export const DEMO_VERSIONS = ['1.2.0', '1.2.1'] as const;

const Switch = z.stringbool().optional();

/**
 * Whether `npm start` should run the sandbox: yes unless `ACEH_RELEASE_SANDBOX` says otherwise.
 *
 * @throws Error naming the variable when its value is neither on nor off.
 */
export function sandboxEnabled(env: Record<string, string | undefined>): boolean {
  const parsed = Switch.safeParse(env[SANDBOX_SWITCH] || undefined);
  if (!parsed.success) {
    throw new Error(
      `${SANDBOX_SWITCH} must be on or off (true/false, 1/0, yes/no), not ${env[SANDBOX_SWITCH]}`,
    );
  }
  return parsed.data ?? true;
}

export interface LocalSandbox {
  sandbox: Sandbox;
  /** What runs where and which images are in the registry, one line each. */
  where: string[];
  /** How to try a release from another terminal: a heading and three commands. */
  hint: string[];
}

/**
 * Wipes `dir`, starts the sandbox in it on the configuration of this process (`ACEH_RELEASE_CONFIG` or
 * `config/aceh-commerce.yaml`, with environment overrides; configuration warnings go to `log`), and pushes
 * the demo images. The caller stops the sandbox.
 *
 * @throws `PlatformConfigError`/`ConfigFileError` for an unusable configuration; whatever `startSandbox`
 *   throws when something cannot start.
 */
export async function startLocalSandbox(options: {
  dir: string;
  env: Record<string, string | undefined>;
  log: (line: string) => void;
  /** A PostgreSQL cluster; default true. */
  postgres?: boolean;
}): Promise<LocalSandbox> {
  const loaded = readPlatformConfig({ file: configFilePath(undefined, options.env), env: options.env });
  for (const w of loaded.warnings) options.log(`configuration warning: ${formatIssue(w)}`);
  fs.rmSync(options.dir, { recursive: true, force: true });
  const sandbox = await startSandbox({
    dir: options.dir,
    config: loaded.config,
    log: options.log,
    ...(options.postgres === undefined ? {} : { postgres: options.postgres }),
  });
  try {
    const pushed: string[] = [];
    for (const version of DEMO_VERSIONS) {
      const digest = await sandbox.pushImage(version);
      pushed.push(`${sandbox.config.systems.registry.repository}:${version} (${digest.slice(0, 19)}…)`);
    }
    const version = DEMO_VERSIONS[0];
    const where = [
      ...sandbox.describe(),
      `images         every application runs ${SANDBOX_PREVIOUS_VERSION}; pushed ${pushed.join(', ')}`,
    ];
    const hint = [
      'try a release, in another terminal:',
      `  npx aceh-release release start ${version} --commit ${sandbox.commit} --requested-by alice`,
      `  npx aceh-release release qa ${version} --passed --reporter qa-bot && npx aceh-release release approve ${version} --approver tech-lead`,
      `  npx aceh-release release status ${version} --watch`,
    ];
    return { sandbox, where, hint };
  } catch (err) {
    await sandbox.stop();
    throw err;
  }
}
