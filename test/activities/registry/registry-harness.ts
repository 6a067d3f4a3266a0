/**
 * The real components behind the registry tests: the Debian `docker-registry` (Docker Distribution 2.8)
 * started on 127.0.0.1 with a configuration written here (filesystem storage in a temporary directory;
 * anonymous, htpasswd or token authentication), `skopeo` to push images into it, `openssl` for the
 * certificate of a token service, and that token service itself: a small HTTP server that issues the
 * ES256-signed JWTs Distribution verifies (`docs/content/spec/auth/jwt.md`), the way a real token service
 * (Harbor, GitLab, docker_auth) does.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes, sign } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where a binary is on PATH, or undefined. */
export function findBinary(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter).concat(['/usr/bin', '/usr/sbin'])) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Throws, naming what to install, when a binary the tests run is missing (never skip). */
export function requireBinaries(needs: { binary: string; debianPackage: string }[]): Record<string, string> {
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const { binary, debianPackage } of needs) {
    const where = findBinary(binary);
    if (where) found[binary] = where;
    else missing.push(`${binary} (Debian package ${debianPackage})`);
  }
  if (missing.length > 0) {
    throw new Error(
      `the registry tests need ${missing.join(', ')}; install it: apt-get install ${needs.map((n) => n.debianPackage).join(' ')}`,
    );
  }
  return found;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export type RegistryAuth =
  | { kind: 'none' }
  | { kind: 'htpasswd'; file: string }
  | { kind: 'token'; realm: string; service: string; issuer: string; rootCertBundle: string };

export interface RunningRegistry {
  baseUrl: string;
  hostPort: string;
  stop(): Promise<void>;
}

/** Starts `docker-registry serve` on a free 127.0.0.1 port and waits until it answers `/v2/`. */
export async function startRegistry(options: {
  binary: string;
  workDir: string;
  storageDir: string;
  auth: RegistryAuth;
}): Promise<RunningRegistry> {
  const port = await freePort();
  const name = `registry-${port}`;
  let auth = '';
  if (options.auth.kind === 'htpasswd') {
    auth = `auth:\n  htpasswd:\n    realm: aceh-release-test\n    path: ${options.auth.file}\n`;
  } else if (options.auth.kind === 'token') {
    const a = options.auth;
    auth = `auth:\n  token:\n    realm: ${a.realm}\n    service: ${a.service}\n    issuer: ${a.issuer}\n    rootcertbundle: ${a.rootCertBundle}\n`;
  }
  const config = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${options.storageDir}`,
    '  cache:',
    '    blobdescriptor: inmemory',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
    auth,
  ].join('\n');
  const configFile = path.join(options.workDir, `${name}.yml`);
  fs.writeFileSync(configFile, config);
  const child: ChildProcess = spawn(options.binary, ['serve', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) throw new Error(`docker-registry exited before it was ready:\n${output}`);
    try {
      const res = await fetch(`${baseUrl}/v2/`, { signal: AbortSignal.timeout(1_000) });
      if (res.status === 200 || res.status === 401) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not answer on ${baseUrl} within 20 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    baseUrl,
    hostPort: `127.0.0.1:${port}`,
    async stop() {
      if (!exited) child.kill('SIGTERM');
      await exit;
    },
  };
}

/** Pushes `oci:<layoutDir>:<tag>` to `<hostPort>/<repository>:<tag>` with skopeo (plain HTTP, anonymous). */
export async function skopeoPush(options: {
  binary: string;
  workDir: string;
  layoutDir: string;
  tag: string;
  hostPort: string;
  repository: string;
  all?: boolean;
  format?: 'v2s2';
}): Promise<void> {
  const policy = path.join(options.workDir, 'skopeo-policy.json');
  fs.writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const args = ['--policy', policy, 'copy', '--quiet', '--dest-tls-verify=false', '--dest-no-creds'];
  if (options.all) args.push('--all');
  if (options.format) args.push('--format', options.format);
  else args.push('--preserve-digests');
  args.push(
    `oci:${options.layoutDir}:${options.tag}`,
    `docker://${options.hostPort}/${options.repository}:${options.tag}`,
  );
  await run(options.binary, args, { timeout: 30_000, env: { ...process.env, HOME: options.workDir } });
}

/** The manifest bytes skopeo reads for a reference, as an independent check of a digest. */
export async function skopeoRawDigest(options: {
  binary: string;
  workDir: string;
  reference: string;
}): Promise<string> {
  const policy = path.join(options.workDir, 'skopeo-policy.json');
  const { stdout } = await run(
    options.binary,
    ['--policy', policy, 'inspect', '--raw', '--tls-verify=false', '--no-creds', options.reference],
    { timeout: 30_000, env: { ...process.env, HOME: options.workDir }, encoding: 'buffer' },
  );
  return `sha256:${createHash('sha256').update(stdout).digest('hex')}`;
}

/** A self-signed P-256 certificate and key for the token service (openssl). */
export async function makeTokenCertificate(openssl: string, workDir: string) {
  const keyFile = path.join(workDir, 'token-key.pem');
  const certFile = path.join(workDir, 'token-cert.pem');
  await run(
    openssl,
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=aceh-release test token issuer',
    ],
    { timeout: 30_000 },
  );
  const pem = fs.readFileSync(certFile, 'utf8');
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return { keyPem: fs.readFileSync(keyFile, 'utf8'), certFile, certDerBase64: der.toString('base64') };
}

const b64url = (value: Buffer | string) => Buffer.from(value).toString('base64url');

export interface TokenService {
  realm: string;
  /** Requests the service received (credentials stripped to the user name). */
  requests: { user: string | undefined; service: string | null; scope: string | null }[];
  close(): Promise<void>;
}

/**
 * A token service after Docker's `auth/token.md`: `GET <realm>?service=&scope=` with Basic credentials
 * answers `{token, access_token, expires_in, issued_at}`, a JWT signed ES256 with an `x5c` header that
 * Distribution verifies against its `rootcertbundle`; wrong credentials get 401.
 */
export async function startTokenService(options: {
  username: string;
  password: string;
  issuer: string;
  keyPem: string;
  certDerBase64: string;
}): Promise<TokenService> {
  const requests: TokenService['requests'] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const [user, password] = basic ? Buffer.from(basic, 'base64').toString().split(':') : [];
    requests.push({ user, service: url.searchParams.get('service'), scope: url.searchParams.get('scope') });
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    if (user !== options.username || password !== options.password) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ details: 'incorrect username or password' }));
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const [type, name, actions] = (url.searchParams.get('scope') ?? '').split(':');
    const header = { typ: 'JWT', alg: 'ES256', x5c: [options.certDerBase64] };
    const claims = {
      iss: options.issuer,
      sub: user,
      aud: url.searchParams.get('service'),
      exp: now + 300,
      nbf: now - 30,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access: type && name ? [{ type, name, actions: (actions ?? '').split(',').filter(Boolean) }] : [],
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(signingInput), {
      key: options.keyPem,
      dsaEncoding: 'ieee-p1363',
    });
    const token = `${signingInput}.${b64url(signature)}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
