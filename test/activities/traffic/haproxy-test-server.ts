/**
 * A throwaway HAProxy (the Debian package `haproxy`) for the traffic tests: it runs in the foreground
 * (`-db`) in its own process group, from a configuration written into a temporary directory. `stop()`
 * ends the group and removes the directory; if the test process dies before that (timeout, SIGKILL), a
 * detached shell watchdog does the same, so nothing is left behind.
 *
 * A missing binary is an error naming the package to install, in CI and outside it (never a skip).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The haproxy binary: $HAPROXY_BIN, /usr/sbin/haproxy or $PATH; otherwise an error naming the package. */
export function requireHaproxyBinary(): string {
  const candidates = [
    process.env['HAPROXY_BIN'],
    '/usr/sbin/haproxy',
    ...(process.env['PATH'] ?? '').split(path.delimiter).map((dir) => path.join(dir, 'haproxy')),
  ];
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(
    'HAProxy traffic tests: the haproxy binary is missing (looked at $HAPROXY_BIN, /usr/sbin/haproxy and $PATH). ' +
      'Install the Debian package haproxy (apt-get install haproxy), or set HAPROXY_BIN.',
  );
}

export interface HaproxyTestServer {
  /** The temporary directory (configuration, unix sockets). */
  dir: string;
  /** True while the process runs. */
  running(): boolean;
  /** What HAProxy wrote to stderr so far (for failure messages). */
  stderr(): string;
  stop(): Promise<void>;
}

/** Starts HAProxy on the configuration `configFor(dir)` returns. */
export function startHaproxy(configFor: (dir: string) => string): HaproxyTestServer {
  const bin = requireHaproxyBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haproxy-traffic-'));
  const configPath = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(configPath, configFor(dir));
  const child = spawn(bin, ['-f', configPath, '-db'], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pgid = child.pid ?? 0;
  const watchdog = spawn(
    'sh',
    [
      '-c',
      'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -TERM -"$2" 2>/dev/null; rm -rf -- "$3"',
      'haproxy-watchdog',
      String(process.pid),
      String(pgid),
      dir,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();

  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (running() && pgid > 0) {
      process.kill(-pgid, 'SIGTERM');
      const done = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000).unref()),
      ]);
      if (!done && running()) process.kill(-pgid, 'SIGKILL');
    }
    fs.rmSync(dir, { recursive: true, force: true });
    if (watchdog.exitCode === null && watchdog.signalCode === null) watchdog.kill();
  };
  return { dir, running, stderr: () => stderr, stop };
}
