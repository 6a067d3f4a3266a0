import { describe, expect, it } from 'vitest';
import {
  classifyPostgresError,
  classifySqlState,
  classifyToolFailure,
  classifyToolOutput,
} from '../../../src/activities/postgres/classify-postgres-failure';
import {
  parseConnectionString,
  toolConnectionArgs,
} from '../../../src/activities/postgres/postgres-connection';
import { isPreservedEntry } from '../../../src/activities/postgres/snapshots';
import { SecretRedactor } from '../../../src/config/credential-ref';

const redactor = new SecretRedactor();
redactor.add('hunter2-secret');
const ctx = { operation: 'apply migration 001.sql', redactor };

describe('classifySqlState', () => {
  it.each([
    ['08006', 'unavailable'],
    ['08001', 'unavailable'],
    ['57P01', 'unavailable'],
    ['57P03', 'unavailable'],
    ['53300', 'unavailable'],
    ['40001', 'unavailable'],
    ['40P01', 'unavailable'],
    ['55P03', 'unavailable'],
    ['28P01', 'unauthorized'],
    ['28000', 'unauthorized'],
    ['42501', 'unauthorized'],
    ['3D000', 'not-found'],
    ['42P01', 'failed'],
    ['23505', 'failed'],
    ['22012', 'failed'],
    [undefined, undefined],
    ['ECONNREFUSED', undefined],
  ])('%s -> %s', (code, cls) => {
    expect(classifySqlState(code)).toBe(cls);
  });
});

describe('classifyPostgresError', () => {
  it.each([
    [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      'UpstreamUnavailable',
      false,
    ],
    [new Error('Connection terminated unexpectedly'), 'UpstreamUnavailable', false],
    [new Error('Connection terminated due to connection timeout'), 'UpstreamUnavailable', false],
    [new Error('timeout exceeded when trying to connect'), 'UpstreamUnavailable', false],
    [Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 'UpstreamUnavailable', false],
    [
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      'UpstreamUnavailable',
      false,
    ],
    [
      Object.assign(new Error('password authentication failed for user "app"'), { code: '28P01' }),
      'Unauthorized',
      true,
    ],
    [Object.assign(new Error('database "shop" does not exist'), { code: '3D000' }), 'NotFound', true],
    [Object.assign(new Error('syntax error at or near "SELEC"'), { code: '42601' }), 'OperationFailed', true],
    [new Error('something odd'), 'OperationFailed', true],
  ])('%s -> %s', (err, type, nonRetryable) => {
    const f = classifyPostgresError(err, ctx);
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(nonRetryable);
    expect(f.message).toContain('apply migration 001.sql');
  });

  it('redacts known secrets from the message and details', () => {
    const f = classifyPostgresError(
      Object.assign(new Error('role "hunter2-secret" does not exist'), { code: '28000' }),
      { operation: 'connect as hunter2-secret', redactor },
    );
    expect(JSON.stringify([f.message, f.details])).not.toContain('hunter2-secret');
    expect(f.message).toContain('[redacted]');
  });
});

describe('classifyToolFailure (pg_dump / pg_restore)', () => {
  it.each([
    [
      'pg_dump: error: connection to server at "127.0.0.1", port 1 failed: Connection refused',
      'UpstreamUnavailable',
    ],
    ['pg_dump: error: connection to server failed: timeout expired', 'UpstreamUnavailable'],
    ['pg_dump: error: server closed the connection unexpectedly', 'UpstreamUnavailable'],
    ['FATAL:  the database system is starting up', 'UpstreamUnavailable'],
    ['FATAL:  password authentication failed for user "app"', 'Unauthorized'],
    ['FATAL:  no pg_hba.conf entry for host "10.0.0.1"', 'Unauthorized'],
    ['pg_dump: error: query failed: ERROR:  permission denied for table secrets', 'Unauthorized'],
    ['FATAL:  database "shop" does not exist', 'NotFound'],
    ['pg_dump: error: aborting because of server version mismatch', 'OperationFailed'],
    ['', 'OperationFailed'],
  ])('%s -> %s', (stderr, type) => {
    expect(classifyToolFailure('pg_dump', { code: 1, signal: null }, stderr, ctx).type).toBe(type);
  });

  it('names the exit and carries the redacted stderr', () => {
    const f = classifyToolFailure(
      'pg_restore',
      { code: 1, signal: null },
      'pg_restore: error: could not execute query: ERROR: hunter2-secret',
      ctx,
    );
    expect(f.message).toContain('pg_restore exited with code 1');
    expect(f.message).toContain('ERROR: [redacted]');
    expect(f.details?.[0]).toMatchObject({ tool: 'pg_restore', exitCode: 1 });
    expect(classifyToolFailure('pg_dump', { code: null, signal: 'SIGKILL' }, '', ctx).message).toContain(
      'killed by SIGKILL',
    );
  });

  it('classifyToolOutput checks authentication before reachability', () => {
    expect(classifyToolOutput('connection to server failed: FATAL: password authentication failed')).toBe(
      'unauthorized',
    );
  });
});

describe('parseConnectionString', () => {
  it('reads every part, decoding the password', () => {
    expect(parseConnectionString('postgres://app:p%40ss%3Aw%2Fd@db.local:6543/shop?sslmode=require')).toEqual(
      {
        host: 'db.local',
        port: 6543,
        database: 'shop',
        user: 'app',
        password: 'p@ss:w/d',
        sslMode: 'require',
      },
    );
    expect(parseConnectionString('postgresql://app@[::1]/shop')).toMatchObject({ host: '::1', port: 5432 });
  });

  it('rejects what is not a PostgreSQL URL, without echoing the password', () => {
    expect(() => parseConnectionString('mysql://app:topsecret@h/db')).toThrow(/postgres:\/\//);
    expect(() => parseConnectionString('postgres://:topsecret@h/')).toThrow(/user, a host and a database/);
    expect(() => parseConnectionString('not a url topsecret')).not.toThrow(/topsecret/);
  });

  it('the tools get no password in their arguments', () => {
    const args = toolConnectionArgs(parseConnectionString('postgres://app:topsecret@h:5/db'));
    expect(args.join(' ')).not.toContain('topsecret');
    expect(args).toContain('--no-password');
  });
});

describe('isPreservedEntry (what a restore leaves alone)', () => {
  it.each([
    ['3; 2615 16385 SCHEMA - internal release_app', true],
    ['218; 1255 16400 FUNCTION internal audit_deploy_append_only() release_app', true],
    ['220; 1259 16402 TABLE internal audit_deploy release_app', true],
    ['219; 1259 16401 SEQUENCE internal audit_deploy_id_seq release_app', true],
    ['3370; 0 16402 TABLE DATA internal audit_deploy release_app', true],
    ['3377; 0 0 SEQUENCE SET internal audit_deploy_id_seq release_app', true],
    ['3221; 2606 16411 CONSTRAINT internal audit_deploy audit_deploy_pkey release_app', true],
    ['3225; 2620 16413 TRIGGER internal audit_deploy audit_deploy_append_only release_app', true],
    ['3380; 0 0 ACL internal TABLE audit_deploy release_app', true],
    ['215; 1259 16390 TABLE internal schema_migrations release_app', false],
    ['216; 1259 16391 TABLE public products release_app', false],
    ['217; 1259 16392 TABLE public audit_deploy release_app', false],
    ['221; 1259 16393 TABLE internal schema_migrations audit_deployer', false],
    ['4; 2615 16386 SCHEMA - internal_reports release_app', false],
    [';', false],
  ])('%s -> %s', (line, preserved) => {
    expect(isPreservedEntry(line)).toBe(preserved);
  });
});
