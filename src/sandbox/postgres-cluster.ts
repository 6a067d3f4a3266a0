/**
 * A throwaway PostgreSQL 15 cluster for tests and the local sandbox: `initdb` into a temp dir (under
 * `parentDir`, os.tmpdir() by default), `pg_ctl start` on a free 127.0.0.1 port (its unix socket in the same
 * temp dir), removed again by `destroy()` (`pg_ctl stop -m immediate`). When the process dies without
 * reaching `destroy()` (killed by a timeout, SIGKILL), a small detached watchdog notices and stops and
 * removes the cluster.
 *
 * PostgreSQL refuses to run as root: as root, every server command runs as the `postgres` OS user
 * (`runuser -u postgres --`) and the temp dir belongs to it.
 *
 * A missing binary or user is an error naming what to install (never a skip), in CI and outside it.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface PostgresTools {
  binDir: string;
  initdb: string;
  pgCtl: string;
  pgDump: string;
  pgRestore: string;
}

const DEFAULT_BIN_DIR = '/usr/lib/postgresql/15/bin';

/** The PostgreSQL 15 binaries, or an error naming the missing one and the Debian package. */
export function requirePostgresTools(): PostgresTools {
  const binDir = process.env['PG_BIN_DIR'] ?? DEFAULT_BIN_DIR;
  const tools: PostgresTools = {
    binDir,
    initdb: path.join(binDir, 'initdb'),
    pgCtl: path.join(binDir, 'pg_ctl'),
    pgDump: path.join(binDir, 'pg_dump'),
    pgRestore: path.join(binDir, 'pg_restore'),
  };
  for (const bin of [
    tools.initdb,
    tools.pgCtl,
    tools.pgDump,
    tools.pgRestore,
    path.join(binDir, 'postgres'),
  ]) {
    try {
      fs.accessSync(bin, fs.constants.X_OK);
    } catch {
      throw new Error(
        `PostgreSQL test cluster: ${bin} is missing or not executable. Install the Debian package ` +
          `postgresql-15 (server and client tools), or set PG_BIN_DIR to a PostgreSQL 15 bin directory.`,
      );
    }
  }
  return tools;
}

/** As root the server runs as this OS user; its uid and gid. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(
      'PostgreSQL test cluster: running as root, but there is no `postgres` OS user to run the server ' +
        '(PostgreSQL refuses root). Install the Debian package postgresql-15, which creates it.',
    );
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface PostgresCluster {
  host: string;
  port: number;
  /** The temp dir: data dir, socket, log. */
  dir: string;
  tools: PostgresTools;
  superuser: string;
  superuserPassword: string;
  /** Runs SQL as the superuser in `database` (default `postgres`). */
  query<T extends object = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    database?: string,
  ): Promise<T[]>;
  /** Creates a login role (if missing) and a database owned by it. */
  createDatabase(name: string, owner: { user: string; password: string }): Promise<void>;
  /** Stops the server at once (`-m immediate`) and removes the temp dir. Safe to call twice. */
  destroy(): Promise<void>;
}

export interface StartClusterOptions {
  /** Extra `postgres -c` settings. */
  settings?: Record<string, string>;
  /**
   * Where the temp dir is made; os.tmpdir() by default. os.tmpdir() is used instead when the server's OS
   * user cannot reach `parentDir` (running as root, the server runs as `postgres`) or when the unix socket
   * path under it would be too long for the kernel.
   */
  parentDir?: string;
}

/** Longest unix socket path PostgreSQL can bind (sun_path is 108 bytes on Linux, with its NUL). */
const MAX_SOCKET_PATH = 107;

/** Whether the server's OS user can reach `dir` (always, when the server runs as the current user). */
function reachableByServer(dir: string, owner: { uid: number; gid: number } | undefined): boolean {
  if (!owner) return true;
  return spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', dir], { timeout: 10_000 }).status === 0;
}

function clusterParent(
  requested: string | undefined,
  owner: { uid: number; gid: number } | undefined,
): string {
  if (requested === undefined) return os.tmpdir();
  const parent = path.resolve(requested);
  // mkdtemp's 6 characters, and the socket's own name with the longest port.
  const socket = path.join(parent, 'aceh-pg-XXXXXX', '.s.PGSQL.65535');
  fs.mkdirSync(parent, { recursive: true });
  return socket.length <= MAX_SOCKET_PATH && reachableByServer(parent, owner) ? parent : os.tmpdir();
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** Starts a cluster; call `destroy()` when done (a test's afterAll, the sandbox's stop). */
export async function startPostgresCluster(options: StartClusterOptions = {}): Promise<PostgresCluster> {
  const tools = requirePostgresTools();
  const owner = postgresUser();
  const asServerUser = (bin: string, args: string[]): [string, string[]] =>
    owner ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  const run = (bin: string, args: string[]) => {
    const [cmd, argv] = asServerUser(bin, args);
    const res = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 30_000 });
    return {
      ok: res.status === 0,
      output: `${res.stdout ?? ''}${res.stderr ?? ''}${res.error?.message ?? ''}`,
    };
  };

  const dir = fs.mkdtempSync(path.join(clusterParent(options.parentDir, owner), 'aceh-pg-'));
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  const pwFile = path.join(dir, 'pw');
  const superuser = 'postgres';
  const superuserPassword = `su-${Math.random().toString(36).slice(2)}`;
  fs.writeFileSync(pwFile, superuserPassword, { mode: 0o600 });
  if (owner) {
    fs.chownSync(dir, owner.uid, owner.gid);
    fs.chownSync(pwFile, owner.uid, owner.gid);
  }

  let destroyed = false;
  const stopNow = () => {
    if (fs.existsSync(path.join(dataDir, 'postmaster.pid')))
      run(tools.pgCtl, ['stop', '-D', dataDir, '-m', 'immediate']);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const onExit = () => {
    if (!destroyed) stopNow();
  };
  process.on('exit', onExit);

  // The watchdog outlives a killed test process and cleans up after it.
  const [stopCmd, stopArgs] = asServerUser(tools.pgCtl, ['stop', '-D', dataDir, '-m', 'immediate']);
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const script =
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
    `[ -f ${quote(path.join(dataDir, 'postmaster.pid'))} ] && ${[stopCmd, ...stopArgs].map(quote).join(' ')} >/dev/null 2>&1; ` +
    `rm -rf ${quote(dir)}`;
  const watchdog = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  watchdog.unref();

  const fail = (what: string, output: string): never => {
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-2000) : '';
    stopNow();
    throw new Error(`PostgreSQL test cluster: ${what} failed:\n${output}\n${log}`);
  };

  const init = run(tools.initdb, [
    '-D',
    dataDir,
    '-U',
    superuser,
    `--pwfile=${pwFile}`,
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    '-E',
    'UTF8',
    '--no-locale',
    '--no-sync',
  ]);
  if (!init.ok) fail('initdb', init.output);

  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dir,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '60',
    ...options.settings,
  };
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    const opts = Object.entries({ ...settings, port: String(port) })
      .map(([k, v]) => `-c ${k}=${v}`)
      .join(' ');
    const started = run(tools.pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '30', '-o', opts]);
    if (started.ok) break;
    // Another process may have taken the port between our probe and the server's bind.
    if (attempt >= 3) fail('pg_ctl start', started.output);
  }

  const host = '127.0.0.1';
  const query = async <T extends object>(sql: string, params: unknown[] = [], database = 'postgres') => {
    const client = new pg.Client({ host, port, user: superuser, password: superuserPassword, database });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end();
    }
  };

  return {
    host,
    port,
    dir,
    tools,
    superuser,
    superuserPassword,
    query,
    async createDatabase(name, dbOwner) {
      const roles = await query('SELECT 1 FROM pg_roles WHERE rolname = $1', [dbOwner.user]);
      if (roles.length === 0)
        await query(
          `CREATE ROLE ${quoteIdent(dbOwner.user)} LOGIN PASSWORD ${quoteLiteral(dbOwner.password)}`,
        );
      await query(`CREATE DATABASE ${quoteIdent(name)} OWNER ${quoteIdent(dbOwner.user)}`);
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      process.off('exit', onExit);
      stopNow();
      if (watchdog.pid !== undefined) {
        try {
          process.kill(watchdog.pid);
        } catch {
          // already gone
        }
      }
      await Promise.resolve();
    },
  };
}
