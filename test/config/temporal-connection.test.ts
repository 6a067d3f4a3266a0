import { describe, expect, it } from 'vitest';
import {
  ConnectionConfigError,
  describeConnection,
  readTemporalConnection,
} from '../../src/config/temporal-connection';

const files: Record<string, string> = {
  '/certs/client.pem': 'CERT',
  '/certs/client.key': 'SECRET-KEY',
  '/certs/ca.pem': 'CA',
};
const readFile = (p: string): Buffer => {
  const content = files[p];
  if (content === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
  return Buffer.from(content);
};

describe('readTemporalConnection', () => {
  it('defaults to the embedded dev server and the default namespace', () => {
    const s = readTemporalConnection({}, readFile);
    expect(s).toEqual({ address: undefined, namespace: 'default', tls: undefined, apiKey: undefined });
    expect(describeConnection(s)).toBe('embedded dev server namespace=default plaintext');
  });

  it('reads a plaintext self-hosted cluster', () => {
    const s = readTemporalConnection(
      { TEMPORAL_ADDRESS: 'temporal.internal:7233', TEMPORAL_NAMESPACE: 'aceh' },
      readFile,
    );
    expect(s.address).toBe('temporal.internal:7233');
    expect(s.namespace).toBe('aceh');
    expect(s.tls).toBeUndefined();
  });

  it('builds mTLS from certificate, key and CA files', () => {
    const s = readTemporalConnection(
      {
        TEMPORAL_ADDRESS: 'aceh.a1b2c.tmprl.cloud:7233',
        TEMPORAL_TLS_CERT: '/certs/client.pem',
        TEMPORAL_TLS_KEY: '/certs/client.key',
        TEMPORAL_TLS_CA: '/certs/ca.pem',
        TEMPORAL_TLS_SERVER_NAME: 'aceh.a1b2c.tmprl.cloud',
      },
      readFile,
    );
    expect(s.tls?.clientCertPair?.crt.toString()).toBe('CERT');
    expect(s.tls?.clientCertPair?.key.toString()).toBe('SECRET-KEY');
    expect(s.tls?.serverRootCACertificate?.toString()).toBe('CA');
    expect(s.tls?.serverNameOverride).toBe('aceh.a1b2c.tmprl.cloud');
    expect(describeConnection(s)).not.toContain('SECRET');
    expect(describeConnection(s)).toContain('mTLS');
  });

  it('turns TLS on for an API key and never prints the key', () => {
    const s = readTemporalConnection(
      { TEMPORAL_ADDRESS: 'eu.gcp.api.temporal.io:7233', TEMPORAL_API_KEY: 'tk-secret-123' },
      readFile,
    );
    expect(s.tls).toEqual({});
    expect(s.apiKey).toBe('tk-secret-123');
    expect(describeConnection(s)).not.toContain('tk-secret-123');
  });

  it.each([
    [{ TEMPORAL_ADDRESS: 'no-port' }, 'TEMPORAL_ADDRESS'],
    [{ TEMPORAL_TLS: 'maybe' }, 'TEMPORAL_TLS'],
    [{ TEMPORAL_TLS_CERT: '/certs/client.pem' }, 'TEMPORAL_TLS_KEY go together'],
    [
      { TEMPORAL_TLS_CERT: '/nope.pem', TEMPORAL_TLS_KEY: '/certs/client.key' },
      'TEMPORAL_TLS_CERT: cannot read /nope.pem',
    ],
    [{ TEMPORAL_TLS: 'false', TEMPORAL_TLS_CA: '/certs/ca.pem' }, 'contradicts'],
  ])('rejects %j with a message naming the problem', (env, message) => {
    expect(() => readTemporalConnection(env, readFile)).toThrow(ConnectionConfigError);
    expect(() => readTemporalConnection(env, readFile)).toThrow(message);
  });

  it('reads TEMPORAL_TLS=false as false, not as a truthy string', () => {
    expect(
      readTemporalConnection({ TEMPORAL_TLS: 'false', TEMPORAL_API_KEY: 'k' }, readFile).tls,
    ).toBeUndefined();
  });
});
