/**
 * A throwaway Prometheus server for tests (the Debian package `prometheus`): a temporary config and TSDB
 * under os.tmpdir(), listening on a free 127.0.0.1 port, scraping the given targets every second. `stop()`
 * ends it and removes the directory; when the test process dies first (timeout, SIGKILL), a small detached
 * watchdog does the same.
 *
 * A missing binary is an error naming the package to install (never a skip), in CI and outside it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';

export interface PrometheusServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  stop(): Promise<void>;
}

/** The binary, from PROMETHEUS_BIN or PATH, or an error naming the Debian package. */
export function requirePrometheusBinary(): string {
  const candidates = process.env['PROMETHEUS_BIN']
    ? [process.env['PROMETHEUS_BIN']]
    : (process.env['PATH'] ?? '').split(path.delimiter).map((dir) => path.join(dir, 'prometheus'));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // try the next directory
    }
  }
  throw new Error(
    'Prometheus test server: the prometheus binary is missing. Install the Debian package prometheus ' +
      '(apt-get install prometheus), or set PROMETHEUS_BIN to the binary.',
  );
}

export async function freeLocalPort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Starts Prometheus scraping `targets` (`host:port`, path /metrics) every second; resolves once it is ready. */
export async function startPrometheus(options: { targets: string[] }): Promise<PrometheusServer> {
  const binary = requirePrometheusBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aceh-prometheus-'));
  const configFile = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(
    configFile,
    YAML.stringify({
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      scrape_configs: [{ job_name: 'app', static_configs: [{ targets: options.targets }] }],
    }),
  );
  const port = await freeLocalPort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    binary,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const keep = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const watchdog = spawn(
    'sh',
    [
      '-c',
      `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill ${child.pid ?? 0} 2>/dev/null; rm -rf ${quote(dir)}`,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
    if (watchdog.exitCode === null) watchdog.kill();
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`Prometheus test server exited (${child.exitCode}) before it was ready:\n${log}`);
    }
    try {
      const res = await fetch(`${url}/-/ready`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Prometheus test server was not ready within 15 s:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { url, stop };
}
