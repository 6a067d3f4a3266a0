import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createGitActivities, type GitActivitiesOptions } from '../../../src/activities/git/git-activities';

/** An activity context whose logger stays quiet about the failures these tests provoke on purpose. */
const quietEnv = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
  new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });

/** `env.run` typed with the activity's own input and result. */
function runIn<A extends unknown[], R>(
  env: MockActivityEnvironment,
  fn: (...args: A) => Promise<R>,
  ...args: A
): Promise<R> {
  return env.run<A, R, typeof fn>(fn, ...args);
}

/** Git reads no configuration of the machine running the tests. */
const ISOLATED_ENV = { GIT_CONFIG_GLOBAL: os.devNull, GIT_CONFIG_NOSYSTEM: '1' };
const TAGGER = { name: 'Aceh Release Bot', email: 'release-bot@example.invalid' };

let tmp: string;
let remoteDir: string;
let seedDir: string;
let releaseDir: string;
const commits: string[] = [];

function sh(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    env: {
      ...process.env,
      ...ISOLATED_ENV,
      GIT_AUTHOR_NAME: 'Dev',
      GIT_AUTHOR_EMAIL: 'dev@example.invalid',
      GIT_COMMITTER_NAME: 'Dev',
      GIT_COMMITTER_EMAIL: 'dev@example.invalid',
    },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

function commit(subject: string, body = ''): string {
  fs.appendFileSync(path.join(seedDir, 'CHANGELOG.md'), `${subject}\n`);
  sh(seedDir, 'add', 'CHANGELOG.md');
  sh(seedDir, 'commit', '-q', '-m', body ? `${subject}\n\n${body}` : subject);
  const sha = sh(seedDir, 'rev-parse', 'HEAD');
  commits.push(sha);
  return sha;
}

beforeAll(() => {
  try {
    execFileSync('git', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      'The git activity tests need the "git" binary on the PATH (Debian package git); it is missing.',
    );
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'git-activities-'));
  remoteDir = path.join(tmp, 'remote.git');
  seedDir = path.join(tmp, 'seed');
  releaseDir = path.join(tmp, 'release');
  sh(tmp, 'init', '-q', '--bare', '-b', 'main', remoteDir);
  sh(tmp, 'clone', '-q', remoteDir, seedDir);
  sh(seedDir, 'checkout', '-q', '-b', 'main');
  commit('feat: checkout page');
  commit('fix: cart total rounding');
  sh(seedDir, 'tag', '-a', '-m', 'v1.0.0', 'v1.0.0');
  commit('feat: wishlist', 'Adds a wishlist to the account page.');
  commit('fix: image lazy loading');
  sh(seedDir, 'push', '-q', 'origin', 'main', 'v1.0.0');
  sh(tmp, 'clone', '-q', remoteDir, releaseDir);
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function gitActivities(overrides: Partial<GitActivitiesOptions> = {}) {
  return createGitActivities({ repoDir: releaseDir, tagger: TAGGER, env: ISOLATED_ENV, ...overrides });
}

const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
  quietEnv().run(fn, ...args);

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected the activity to fail');
}

function remoteTagCommit(name: string): string | undefined {
  const out = sh(remoteDir, 'tag', '-l', name);
  return out ? sh(remoteDir, 'rev-parse', `${name}^{commit}`) : undefined;
}

describe('createTag', () => {
  it('creates an annotated tag on the commit and pushes it', async () => {
    const target = commits[3]!;
    const out = await run(gitActivities().createTag, {
      name: 'v1.1.0-rc.1',
      commit: target,
      message: 'Release candidate 1 of v1.1.0',
    });
    expect(out).toEqual({ name: 'v1.1.0-rc.1', commit: target, created: true });
    expect(remoteTagCommit('v1.1.0-rc.1')).toBe(target);
    expect(sh(remoteDir, 'cat-file', '-t', 'v1.1.0-rc.1')).toBe('tag');
    const tagObject = sh(remoteDir, 'cat-file', '-p', 'v1.1.0-rc.1');
    expect(tagObject).toContain('tagger Aceh Release Bot <release-bot@example.invalid>');
    expect(tagObject).toContain('Release candidate 1 of v1.1.0');
  });

  it('accepts a short commit id and is idempotent on retry', async () => {
    const target = commits[3]!;
    const a = gitActivities();
    const first = await run(a.createTag, { name: 'v1.1.0', commit: target.slice(0, 10), message: 'v1.1.0' });
    expect(first).toEqual({ name: 'v1.1.0', commit: target, created: true });
    const again = await run(a.createTag, { name: 'v1.1.0', commit: target, message: 'v1.1.0' });
    expect(again).toEqual({ name: 'v1.1.0', commit: target, created: false });
  });

  it('refuses to move a tag that the remote has on another commit', async () => {
    const f = await failureOf(
      run(gitActivities().createTag, { name: 'v1.0.0', commit: commits[3]!, message: 'x' }),
    );
    expect(f.type).toBe('PolicyViolation');
    expect(f.message).toContain('never move');
    expect(remoteTagCommit('v1.0.0')).toBe(commits[1]);
  });

  it('accepts a tag somebody else already pushed on the same commit', async () => {
    sh(seedDir, 'tag', '-a', '-m', 'rc2', 'v1.1.1-rc.2', commits[2]!);
    sh(seedDir, 'push', '-q', 'origin', 'v1.1.1-rc.2');
    const out = await run(gitActivities().createTag, {
      name: 'v1.1.1-rc.2',
      commit: commits[2]!,
      message: 'x',
    });
    expect(out.created).toBe(false);
  });

  it('pushes a tag an earlier attempt created locally but did not push', async () => {
    sh(releaseDir, 'tag', '-a', '-m', 'half done', 'v1.2.0-rc.1', commits[3]!);
    const out = await run(gitActivities().createTag, {
      name: 'v1.2.0-rc.1',
      commit: commits[3]!,
      message: 'x',
    });
    expect(out.created).toBe(true);
    expect(remoteTagCommit('v1.2.0-rc.1')).toBe(commits[3]);
  });

  it('refuses a local tag on another commit that was never pushed', async () => {
    sh(releaseDir, 'tag', 'v1.3.0-rc.1', commits[0]!);
    const f = await failureOf(
      run(gitActivities().createTag, { name: 'v1.3.0-rc.1', commit: commits[3]!, message: 'x' }),
    );
    expect(f.type).toBe('PolicyViolation');
    expect(remoteTagCommit('v1.3.0-rc.1')).toBeUndefined();
  });

  it('fetches a commit the local repository does not have yet', async () => {
    const fresh = commit('feat: newer than the release clone');
    sh(seedDir, 'push', '-q', 'origin', 'main');
    const out = await run(gitActivities().createTag, { name: 'v1.4.0-rc.1', commit: fresh, message: 'x' });
    expect(out).toMatchObject({ commit: fresh, created: true });
  });

  it('fails with NotFound for a commit that exists nowhere', async () => {
    const f = await failureOf(
      run(gitActivities().createTag, { name: 'v9.0.0', commit: 'deadbeefdeadbeef', message: 'x' }),
    );
    expect(f.type).toBe('NotFound');
  });

  it.each(['v1.2', '1.2.3', 'v1.2.3-rc1', 'v1.2.3-beta.1', 'v01.2.3', '--force', 'v1.2.3-rc.01'])(
    'rejects the tag name %j',
    async (name) => {
      const f = await failureOf(run(gitActivities().createTag, { name, commit: commits[0]!, message: 'x' }));
      expect(f.type).toBe('InvalidInput');
    },
  );

  it('fails with InvalidInput when the git binary is missing', async () => {
    const f = await failureOf(
      run(gitActivities({ gitPath: path.join(tmp, 'no-git-here') }).createTag, {
        name: 'v2.0.0',
        commit: commits[0]!,
        message: 'x',
      }),
    );
    expect(f.type).toBe('InvalidInput');
    expect(f.message).toContain('ENOENT');
  });

  it('works from a remote URL alone, in a bare repository it creates', async () => {
    const dir = path.join(tmp, 'from-url.git');
    const out = await run(gitActivities({ repoDir: dir, remote: `file://${remoteDir}` }).createTag, {
      name: 'v1.4.1-rc.1',
      commit: commits[2]!,
      message: 'from a URL',
    });
    expect(out.created).toBe(true);
    expect(fs.existsSync(path.join(dir, 'HEAD'))).toBe(true);
    expect(remoteTagCommit('v1.4.1-rc.1')).toBe(commits[2]);
  });
});

describe('verifyTag', () => {
  it('confirms a tag on its commit', async () => {
    const out = await run(gitActivities().verifyTag, { name: 'v1.0.0', commit: commits[1]! });
    expect(out).toEqual({ name: 'v1.0.0', commit: commits[1], annotated: true });
    const short = await run(gitActivities().verifyTag, { name: 'v1.0.0', commit: commits[1]!.slice(0, 8) });
    expect(short.commit).toBe(commits[1]);
  });

  it('fails with NotFound for an absent tag and PolicyViolation for another commit', async () => {
    expect(
      (await failureOf(run(gitActivities().verifyTag, { name: 'v7.7.7', commit: commits[1]! }))).type,
    ).toBe('NotFound');
    const moved = await failureOf(run(gitActivities().verifyTag, { name: 'v1.0.0', commit: commits[3]! }));
    expect(moved.type).toBe('PolicyViolation');
  });
});

describe('listCommitsBetween', () => {
  it('lists the commits after the previous release, newest first', async () => {
    const out = await run(gitActivities().listCommitsBetween, { from: 'v1.0.0', to: commits[3]! });
    expect(out.commits.map((c) => c.subject)).toEqual(['fix: image lazy loading', 'feat: wishlist']);
    expect(out.commits[1]).toMatchObject({
      sha: commits[2],
      merge: false,
      authorName: 'Dev',
      body: 'Adds a wishlist to the account page.',
    });
    expect(Number.isNaN(Date.parse(out.commits[0]!.authoredAt))).toBe(false);
    expect(out).toMatchObject({ from: commits[1], to: commits[3], truncated: false });
  });

  it('reads branches as the remote has them, and everything for a first release', async () => {
    const out = await run(gitActivities().listCommitsBetween, { to: 'main' });
    expect(out.commits.length).toBe(commits.length);
    expect(out.from).toBeNull();
    const bounded = await run(gitActivities({ maxCommits: 2 }).listCommitsBetween, { to: 'main' });
    expect(bounded.commits).toHaveLength(2);
    expect(bounded.truncated).toBe(true);
  });

  it('fails with NotFound for an unknown revision and InvalidInput for revision syntax', async () => {
    expect(
      (await failureOf(run(gitActivities().listCommitsBetween, { from: 'v0.0.1', to: 'main' }))).type,
    ).toBe('NotFound');
    expect(
      (await failureOf(run(gitActivities().listCommitsBetween, { from: 'main~3', to: 'main' }))).type,
    ).toBe('InvalidInput');
    expect((await failureOf(run(gitActivities().listCommitsBetween, { to: '--output=/tmp/x' }))).type).toBe(
      'InvalidInput',
    );
  });
});

describe('git remote failures', () => {
  let server: http.Server;
  let base: string;
  let hung: http.ServerResponse[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url?.startsWith('/locked/')) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' });
        return res.end('unauthorized');
      }
      if (req.url?.startsWith('/broken/')) {
        res.writeHead(503);
        return res.end('maintenance');
      }
      hung.push(res); // /hang/: never answers
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const res of hung) res.destroy();
    hung = [];
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const verify = (remote: string, extra: Partial<GitActivitiesOptions> = {}) =>
    gitActivities({ remote, ...extra }).verifyTag;

  it('reports refused credentials as Unauthorized, without the credentials', async () => {
    const f = await failureOf(
      run(verify(`${base}/locked/repo.git`), { name: 'v1.0.0', commit: commits[1]! }),
    );
    expect(f.type).toBe('Unauthorized');
    const g = await failureOf(
      run(
        verify(`http://ci:glpat-s3cr3t-t0ken@127.0.0.1:${new URL(base).port}/locked/repo.git`, {
          secrets: ['glpat-s3cr3t-t0ken'],
        }),
        {
          name: 'v1.0.0',
          commit: commits[1]!,
        },
      ),
    );
    expect(g.type).toBe('Unauthorized');
    expect(g.message).not.toContain('glpat-s3cr3t-t0ken');
    expect(JSON.stringify(g.details)).not.toContain('glpat-s3cr3t-t0ken');
  });

  it('reports a missing remote repository as NotFound', async () => {
    const f = await failureOf(
      run(verify(path.join(tmp, 'nowhere.git')), { name: 'v1.0.0', commit: commits[1]! }),
    );
    expect(f.type).toBe('NotFound');
  });

  it('reports a closed port and a 503 as retryable UpstreamUnavailable', async () => {
    const closed = await failureOf(
      run(verify('http://127.0.0.1:9/repo.git'), { name: 'v1.0.0', commit: commits[1]! }),
    );
    expect(closed.type).toBe('UpstreamUnavailable');
    expect(closed.nonRetryable).toBe(false);
    const down = await failureOf(
      run(verify(`${base}/broken/repo.git`), { name: 'v1.0.0', commit: commits[1]! }),
    );
    expect(down.type).toBe('UpstreamUnavailable');
  });

  it('kills git on timeout (UpstreamUnavailable) and on cancellation', async () => {
    const slow = await failureOf(
      run(verify(`${base}/hang/repo.git`, { timeoutMs: 500 }), { name: 'v1.0.0', commit: commits[1]! }),
    );
    expect(slow.type).toBe('UpstreamUnavailable');
    expect(slow.message).toContain('timed out');

    const before = hung.length;
    const env = quietEnv();
    const running = runIn(env, verify(`${base}/hang/repo.git`), { name: 'v1.0.0', commit: commits[1]! });
    await vi.waitFor(() => expect(hung.length).toBeGreaterThan(before));
    env.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
  });
});
