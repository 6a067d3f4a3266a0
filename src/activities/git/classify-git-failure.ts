/**
 * The table that turns a failed `git` run into a failure of the closed list in src/errors.ts. Git speaks
 * through its exit code and stderr (forced to the C locale by the runner), so the table matches stderr:
 *
 * | git says                                                                   | type                | retry |
 * | -------------------------------------------------------------------------- | ------------------- | ----- |
 * | Authentication failed, could not read Username/Password, Permission denied (publickey), 401/403 | Unauthorized | no |
 * | does not appear to be a git repository, repository ... not found, 404      | NotFound            | no    |
 * | [rejected], [remote rejected], hook declined, protected                    | UpstreamRejected    | no    |
 * | Could not resolve host, Failed to connect, Connection refused/reset/timed out, early EOF, remote end hung up, 5xx | UpstreamUnavailable | yes |
 * | the run timed out                                                          | UpstreamUnavailable | yes   |
 * | the git binary is missing; the repository directory is not a repository  | InvalidInput        | no    |
 * | anything else                                                              | OperationFailed     | no    |
 *
 * Credentials embedded in remote URLs (`https://user:token@host/...`) are cut out of every message.
 */
import type { ApplicationFailure } from '@temporalio/common';
import { FailureType, failure } from '../../errors';

/** Removes `user:password@` from URLs in a text. */
export function redactUrlCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1[redacted]@');
}

export interface GitRunFailure {
  /** The git subcommand, e.g. `push`, `ls-remote`. */
  command: string;
  exitCode: number | null;
  stderr: string;
  timedOut?: boolean;
  /** The spawn error code, e.g. ENOENT when the binary is missing. */
  spawnError?: string;
}

const RULES: [RegExp, FailureType, string][] = [
  [
    /Authentication failed|could not read (Username|Password)|Permission denied \(publickey|HTTP Basic: Access denied|The requested URL returned error: 40[13]|terminal prompts disabled/i,
    FailureType.Unauthorized,
    'check the credential the worker uses for the git remote',
  ],
  [
    /does not appear to be a git repository|repository '.*' not found|Repository not found|The requested URL returned error: 404/i,
    FailureType.NotFound,
    'check the remote URL',
  ],
  [
    /\[rejected\]|\[remote rejected\]|hook declined|protected (tag|branch)|denying ref/i,
    FailureType.UpstreamRejected,
    'the remote refused the change',
  ],
  [
    /Could not resolve host|Failed to connect|Connection refused|Connection reset|Connection timed out|Operation timed out|early EOF|remote end hung up|The requested URL returned error: 5\d\d|RPC failed|unable to access/i,
    FailureType.UpstreamUnavailable,
    'will retry',
  ],
];

export function classifyGitFailure(f: GitRunFailure, redact: (text: string) => string): ApplicationFailure {
  const stderr = redact(redactUrlCredentials(f.stderr.trim())).slice(-600);
  const details = { system: 'git', command: f.command, exitCode: f.exitCode, stderr };
  if (f.spawnError) {
    return failure(
      FailureType.InvalidInput,
      `git ${f.command} could not start (${f.spawnError}); install git on the worker or fix gitPath`,
      { details: { ...details, spawnError: f.spawnError } },
    );
  }
  if (f.timedOut) {
    return failure(FailureType.UpstreamUnavailable, `git ${f.command} timed out; will retry`, { details });
  }
  if (/not a git repository/i.test(stderr)) {
    return failure(
      FailureType.InvalidInput,
      `git ${f.command}: the repository directory is not a git repository`,
      {
        details,
      },
    );
  }
  for (const [pattern, type, advice] of RULES) {
    if (pattern.test(stderr)) {
      return failure(type, `git ${f.command} failed (exit ${f.exitCode}): ${stderr}; ${advice}`, { details });
    }
  }
  return failure(FailureType.OperationFailed, `git ${f.command} failed (exit ${f.exitCode}): ${stderr}`, {
    details,
  });
}
