/**
 * Git, through the real `git` CLI (no shell, argv only): release tags and the commit list behind a
 * changelog entry. Works in a local repository (a clone or a bare repository the worker owns) and talks
 * to one remote, which holds the truth about tags.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { SecretRedactor } from '../../config/credential-ref';
import { FailureType, failure } from '../../errors';
import { cancellationSignal, heartbeat, parseActivityInput } from '../activity-support';
import { classifyGitFailure, redactUrlCredentials } from './classify-git-failure';
import {
  type CommitSummary,
  CreateTagInput,
  type CreateTagResult,
  ListCommitsBetweenInput,
  type ListCommitsBetweenResult,
  VerifyTagInput,
  type VerifyTagResult,
} from './git-schemas';

export interface GitActivitiesOptions {
  /**
   * The local repository the worker owns (a clone, or a bare repository). When it does not exist and
   * `remote` is a URL, an empty bare repository is created there and filled from the remote on demand.
   */
  repoDir: string;
  /** A remote name of `repoDir` (`origin`, the default) or a URL. */
  remote?: string;
  /** The git binary; `git` on the PATH by default. */
  gitPath?: string;
  /** Identity written into annotated tags; git's configured identity when absent. */
  tagger?: { name: string; email: string };
  /** Extra environment for git (e.g. `GIT_SSH_COMMAND`); merged over the worker's. */
  env?: Record<string, string>;
  /** Secrets that must never appear in a message (e.g. a token that is part of the remote URL). */
  secrets?: string[];
  /** Bound on one git run; 120 s by default. */
  timeoutMs?: number;
  /** At most this many commits are listed; 2000 by default. */
  maxCommits?: number;
}

/** Where fetched remote branches and tags are kept, apart from the repository's own refs. */
const FETCH_NAMESPACE = 'refs/aceh-release';

interface GitRun {
  stdout: string;
  stderr: string;
  exitCode: number;
}

interface RemoteTag {
  /** The tag object (annotated) or the commit (lightweight). */
  object: string;
  /** The commit the tag points to. */
  commit: string;
  annotated: boolean;
}

const MAX_STDOUT = 32 * 1024 * 1024;
const MAX_STDERR = 64 * 1024;

/**
 * Builds the git activities.
 *
 * - `createTag` creates an annotated release tag (`vX.Y.Z-rc.N` or `vX.Y.Z`) on a commit and pushes it.
 *   Idempotent by check-then-act against the remote: a tag already there on the same commit is success
 *   (`created: false`); on another commit it is `PolicyViolation` (release tags never move). A push that
 *   loses a race is re-checked the same way.
 * - `verifyTag` checks on the remote that the tag exists (`NotFound`) and points to the commit
 *   (`PolicyViolation`). Read-only.
 * - `listCommitsBetween` lists `from..to` after fetching the remote's branches and tags. Read-only.
 *
 * Commits missing locally are fetched from the remote. Git failures follow `classifyGitFailure`
 * (Unauthorized, NotFound, UpstreamRejected, UpstreamUnavailable for network trouble and timeouts,
 * InvalidInput for a missing binary or repository); cancellation kills the git process. Messages never
 * contain credentials from remote URLs or the configured secrets.
 */
export function createGitActivities(options: GitActivitiesOptions) {
  const remote = options.remote ?? 'origin';
  if (remote.startsWith('-')) throw new Error('remote must be a remote name or URL');
  const gitPath = options.gitPath ?? 'git';
  const timeoutMs = options.timeoutMs ?? 120_000;
  const maxCommits = options.maxCommits ?? 2000;
  const redactor = new SecretRedactor();
  for (const s of options.secrets ?? []) redactor.add(s);
  const redact = (text: string) => redactor.redact(redactUrlCredentials(text));
  const remoteIsUrl = /^[a-z][a-z0-9+.-]*:\/\/|^[^/:]+@[^:]+:|^\//i.test(remote);

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // Never wait for a password prompt; read messages in one language.
    GIT_TERMINAL_PROMPT: '0',
    GIT_SSH_COMMAND: process.env['GIT_SSH_COMMAND'] ?? 'ssh -o BatchMode=yes',
    LC_ALL: 'C',
    LANG: 'C',
    ...(options.tagger
      ? {
          GIT_COMMITTER_NAME: options.tagger.name,
          GIT_COMMITTER_EMAIL: options.tagger.email,
          GIT_AUTHOR_NAME: options.tagger.name,
          GIT_AUTHOR_EMAIL: options.tagger.email,
        }
      : {}),
    ...(options.env ?? {}),
  };

  /** Runs git; resolves with any exit code, rejects only when it could not run, timed out or was cancelled. */
  function run(args: string[], cwd: string = options.repoDir): Promise<GitRun> {
    const signal = cancellationSignal();
    const command = args.find((a) => !a.startsWith('-')) ?? 'git';
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise((resolve, reject) => {
      // Its own process group, so that killing it also kills helpers (git-remote-https, ssh) holding the pipes.
      const child = spawn(gitPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      let settled = false;
      const started = Date.now();
      const kill = () => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      };
      const onAbort = () => kill();
      signal.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, timeoutMs);
      const beat = setInterval(() => heartbeat({ git: command, elapsedMs: Date.now() - started }), 5000);
      const done = () => {
        settled = true;
        clearTimeout(timer);
        clearInterval(beat);
        signal.removeEventListener('abort', onAbort);
      };
      child.stdout.on('data', (c: Buffer) => {
        if (stdout.length < MAX_STDOUT) stdout += c.toString('utf8');
      });
      child.stderr.on('data', (c: Buffer) => {
        stderr = (stderr + c.toString('utf8')).slice(-MAX_STDERR);
      });
      child.on('error', (err: NodeJS.ErrnoException) => {
        if (settled) return;
        done();
        reject(
          classifyGitFailure(
            { command, exitCode: null, stderr: '', spawnError: err.code ?? err.message },
            redact,
          ),
        );
      });
      child.on('close', (code) => {
        if (settled) return;
        done();
        if (signal.aborted) return reject(signal.reason as Error);
        if (timedOut)
          return reject(classifyGitFailure({ command, exitCode: code, stderr, timedOut: true }, redact));
        resolve({ stdout, stderr, exitCode: code ?? -1 });
      });
    });
  }

  /** Runs git and fails (classified) on a non-zero exit. */
  async function git(args: string[], cwd?: string): Promise<string> {
    const out = await run(args, cwd);
    if (out.exitCode !== 0) {
      const command = args.find((a) => !a.startsWith('-')) ?? 'git';
      throw classifyGitFailure({ command, exitCode: out.exitCode, stderr: out.stderr }, redact);
    }
    return out.stdout;
  }

  let repoReady: Promise<void> | undefined;
  function ensureRepo(): Promise<void> {
    repoReady ??= (async () => {
      if (fs.existsSync(options.repoDir)) return;
      if (!remoteIsUrl) {
        throw failure(
          FailureType.InvalidInput,
          `git: the repository directory ${options.repoDir} does not exist and the remote "${remote}" is not a URL to fill it from`,
          { details: { repoDir: options.repoDir } },
        );
      }
      fs.mkdirSync(options.repoDir, { recursive: true });
      await git(['init', '--bare', '--quiet', options.repoDir], options.repoDir);
    })().catch((err: unknown) => {
      repoReady = undefined;
      throw err;
    });
    return repoReady;
  }

  async function fetchRemote(): Promise<void> {
    await git([
      'fetch',
      '--quiet',
      '--no-tags',
      '--prune',
      remote,
      `+refs/heads/*:${FETCH_NAMESPACE}/heads/*`,
      `+refs/tags/*:${FETCH_NAMESPACE}/tags/*`,
    ]);
  }

  /** The full commit id of a local revision, or undefined. */
  async function localCommit(rev: string): Promise<string | undefined> {
    const out = await run(['rev-parse', '-q', '--verify', '--end-of-options', `${rev}^{commit}`]);
    return out.exitCode === 0 ? out.stdout.trim() : undefined;
  }

  /** Resolves a revision to a full commit id, fetching from the remote when it is not known locally. */
  async function resolveCommit(rev: string, activity: string, alreadyFetched = false): Promise<string> {
    const isId = /^[0-9a-f]{7,64}$/.test(rev);
    const candidates = isId
      ? [rev]
      : [`${FETCH_NAMESPACE}/tags/${rev}`, `${FETCH_NAMESPACE}/heads/${rev}`, rev];
    for (const c of candidates) {
      const sha = await localCommit(c);
      if (sha) return sha;
    }
    if (!alreadyFetched) {
      await fetchRemote();
      return resolveCommit(rev, activity, true);
    }
    throw failure(
      FailureType.NotFound,
      `${activity}: "${rev}" is not a commit, branch or tag of ${redact(remote)}`,
      {
        details: { system: 'git', revision: rev },
      },
    );
  }

  async function remoteTag(name: string): Promise<RemoteTag | undefined> {
    const out = await git(['ls-remote', '--tags', remote, `refs/tags/${name}`, `refs/tags/${name}^{}`]);
    let direct: string | undefined;
    let peeled: string | undefined;
    for (const line of out.split('\n')) {
      const [sha, ref] = line.split('\t');
      if (!sha || !ref) continue;
      if (ref === `refs/tags/${name}`) direct = sha;
      if (ref === `refs/tags/${name}^{}`) peeled = sha;
    }
    if (!direct) return undefined;
    return { object: direct, commit: peeled ?? direct, annotated: peeled !== undefined };
  }

  function movedTag(name: string, where: string, current: string, wanted: string) {
    return failure(
      FailureType.PolicyViolation,
      `tag ${name} already exists ${where} on commit ${current.slice(0, 12)}, not ${wanted.slice(0, 12)}; release tags never move: bump the version instead`,
      { details: { tag: name, where, current, wanted } },
    );
  }

  async function createTag(input: CreateTagInput): Promise<CreateTagResult> {
    const { name, commit, message } = parseActivityInput(CreateTagInput, input, 'createTag');
    await ensureRepo();
    const sha = await resolveCommit(commit, 'createTag');
    const existing = await remoteTag(name);
    if (existing) {
      if (existing.commit !== sha) throw movedTag(name, `on ${redact(remote)}`, existing.commit, sha);
      return { name, commit: sha, created: false };
    }
    const local = await localCommit(`refs/tags/${name}`);
    if (local && local !== sha) throw movedTag(name, 'in the local repository (never pushed)', local, sha);
    if (!local) await git(['tag', '--annotate', '--cleanup=verbatim', '--message', message, name, sha]);
    const pushed = await run(['push', '--porcelain', remote, `refs/tags/${name}:refs/tags/${name}`]);
    if (pushed.exitCode !== 0) {
      // Someone may have pushed the same tag in between: the remote decides.
      const now = await remoteTag(name);
      if (now?.commit === sha) return { name, commit: sha, created: false };
      if (now) throw movedTag(name, `on ${redact(remote)}`, now.commit, sha);
      throw classifyGitFailure(
        { command: 'push', exitCode: pushed.exitCode, stderr: pushed.stderr + pushed.stdout },
        redact,
      );
    }
    return { name, commit: sha, created: true };
  }

  async function verifyTag(input: VerifyTagInput): Promise<VerifyTagResult> {
    const { name, commit } = parseActivityInput(VerifyTagInput, input, 'verifyTag');
    await ensureRepo();
    const tag = await remoteTag(name);
    if (!tag) {
      throw failure(FailureType.NotFound, `tag ${name} does not exist on ${redact(remote)}`, {
        details: { system: 'git', tag: name },
      });
    }
    const matches =
      commit.length === tag.commit.length ? tag.commit === commit : tag.commit.startsWith(commit);
    if (!matches) {
      throw failure(
        FailureType.PolicyViolation,
        `tag ${name} points to ${tag.commit.slice(0, 12)}, not ${commit.slice(0, 12)}`,
        { details: { tag: name, current: tag.commit, wanted: commit } },
      );
    }
    return { name, commit: tag.commit, annotated: tag.annotated };
  }

  async function listCommitsBetween(input: ListCommitsBetweenInput): Promise<ListCommitsBetweenResult> {
    const { from, to } = parseActivityInput(ListCommitsBetweenInput, input, 'listCommitsBetween');
    await ensureRepo();
    await fetchRemote();
    const toSha = await resolveCommit(to, 'listCommitsBetween', true);
    const fromSha = from === undefined ? undefined : await resolveCommit(from, 'listCommitsBetween', true);
    const range = fromSha ? `${fromSha}..${toSha}` : toSha;
    const out = await git([
      'log',
      '--no-color',
      `--max-count=${maxCommits + 1}`,
      '--format=%H%x1f%P%x1f%an%x1f%aI%x1f%s%x1f%b%x1e',
      range,
      '--',
    ]);
    const commits: CommitSummary[] = [];
    for (const record of out.split('\x1e')) {
      const fields = record.replace(/^\n/, '').split('\x1f');
      if (fields.length < 6) continue;
      const [sha = '', parents = '', authorName = '', authoredAt = '', subject = '', body = ''] = fields;
      commits.push({
        sha,
        merge: parents.trim().split(' ').filter(Boolean).length > 1,
        authorName,
        authoredAt,
        subject,
        body: body.trim().slice(0, 2000),
      });
    }
    const truncated = commits.length > maxCommits;
    return { from: fromSha ?? null, to: toSha, commits: commits.slice(0, maxCommits), truncated };
  }

  return { createTag, verifyTag, listCommitsBetween };
}

export type GitActivities = ReturnType<typeof createGitActivities>;
