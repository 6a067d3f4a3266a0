/**
 * The sandbox's git side: a local bare repository standing in for GitHub (`<dir>/git/remote/<name>.git`),
 * a working copy that commits to it (`<dir>/git/work`), and the worker's own repository prepared so that
 * annotated release tags can be made there.
 *
 * Every git command here runs with the user's global and system git configuration switched off and the
 * identity set in the repository, so it works on a machine without any git configuration and is not
 * disturbed by one (commit signing, hooks paths, default branch names).
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const IDENTITY = { name: 'Aceh Sandbox', email: 'sandbox@aceh-release.localhost' };

/** The environment of the sandbox's own git commands: no global or system configuration. */
function isolatedEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    LC_ALL: 'C',
  };
}

async function git(cwd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run('git', args, { cwd, env: isolatedEnv(), maxBuffer: 16 * 1024 * 1024 });
    return stdout.trim();
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') {
      throw new Error('the sandbox needs git on the PATH (Debian package git)', { cause: err });
    }
    throw new Error(`sandbox: git ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`, {
      cause: err,
    });
  }
}

/** Sets the sandbox identity in a repository and turns off signing a global setting might ask for. */
async function configureRepository(dir: string): Promise<void> {
  await git(dir, ['config', 'user.name', IDENTITY.name]);
  await git(dir, ['config', 'user.email', IDENTITY.email]);
  await git(dir, ['config', 'commit.gpgsign', 'false']);
  await git(dir, ['config', 'tag.gpgsign', 'false']);
}

export interface SandboxGit {
  /** The bare repository the worker pushes tags to (`WorkerLocalSettings.gitRemote`). */
  remote: string;
  /** The working copy commits are made in. */
  workDir: string;
  /** Head of `main` in the remote. */
  head(): Promise<string>;
  /** Commits a change to `main` with `message`, pushes it and returns the commit sha. */
  addCommit(message: string): Promise<string>;
  /** The tags of the remote, sorted. */
  tags(): Promise<string[]>;
  /**
   * The commit a branch or tag of the remote points to, or undefined. Synchronous: the GitHub fake asks it
   * while answering a request.
   */
  resolveRef(ref: string): string | undefined;
}

/**
 * Creates the remote with two commits on `main` (and `branches`, e.g. `staging` and `develop`, at the same
 * commit) and a working copy of it.
 */
export async function createSandboxGit(options: {
  dir: string;
  /** `owner/name` of the repository it stands for; the remote is `<name>.git`. */
  repository: string;
  branches: string[];
}): Promise<SandboxGit> {
  const name = options.repository.split('/').pop() ?? 'repository';
  const remote = path.join(options.dir, 'remote', `${name}.git`);
  const workDir = path.join(options.dir, 'work');
  fs.mkdirSync(remote, { recursive: true });
  fs.mkdirSync(workDir, { recursive: true });
  await git(remote, ['init', '--quiet', '--bare', '--initial-branch=main']);
  await git(workDir, ['init', '--quiet', '--initial-branch=main']);
  await configureRepository(workDir);
  await git(workDir, ['remote', 'add', 'origin', remote]);

  const changes = path.join(workDir, 'CHANGES.md');
  const commit = async (message: string): Promise<string> => {
    fs.appendFileSync(changes, `- ${message.split('\n')[0]}\n`);
    await git(workDir, ['add', 'CHANGES.md']);
    await git(workDir, ['commit', '--quiet', '--message', message]);
    await git(workDir, ['push', '--quiet', 'origin', 'main']);
    return git(workDir, ['rev-parse', 'HEAD']);
  };

  fs.writeFileSync(
    path.join(workDir, 'README.md'),
    `# ${options.repository}\n\nThe sandbox's application.\n`,
  );
  fs.writeFileSync(changes, '# Changes\n\n');
  await git(workDir, ['add', 'README.md']);
  await commit('Initial commit');
  const head = await commit('Add the health endpoint');
  for (const branch of options.branches.filter((b) => b !== 'main' && !b.includes('*'))) {
    await git(workDir, ['push', '--quiet', 'origin', `${head}:refs/heads/${branch}`]);
  }

  let queue: Promise<unknown> = Promise.resolve();
  return {
    remote,
    workDir,
    head: () => git(remote, ['rev-parse', 'refs/heads/main']),
    addCommit: (message) => {
      // One commit at a time: each appends to the same file and pushes the same branch.
      const next = queue.then(() => commit(message));
      queue = next.catch(() => undefined);
      return next;
    },
    tags: async () => {
      const out = await git(remote, ['for-each-ref', '--format=%(refname:strip=2)', 'refs/tags']);
      return out.split('\n').filter(Boolean).sort();
    },
    resolveRef(ref) {
      if (ref.startsWith('-')) return undefined;
      for (const candidate of [`refs/heads/${ref}`, `refs/tags/${ref}`]) {
        try {
          return execFileSync('git', ['rev-parse', '--verify', '--quiet', `${candidate}^{commit}`], {
            cwd: remote,
            env: isolatedEnv(),
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'ignore'],
          }).trim();
        } catch {
          // not this kind of ref
        }
      }
      return undefined;
    },
  };
}

/**
 * Prepares the worker's repository (what the git activities call `repoDir`) as an empty bare repository
 * with the sandbox identity, so that `createTag` can write annotated tags without any git configuration.
 */
export async function prepareWorkerRepository(repoDir: string): Promise<void> {
  fs.mkdirSync(repoDir, { recursive: true });
  await git(repoDir, ['init', '--quiet', '--bare']);
  await configureRepository(repoDir);
}
