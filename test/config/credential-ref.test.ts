import { describe, expect, it } from 'vitest';
import {
  CredentialRef,
  CredentialError,
  SecretRedactor,
  resolveCredential,
} from '../../src/config/credential-ref';

describe('credential references', () => {
  it('resolves an environment variable and a file', () => {
    expect(resolveCredential({ env: 'COOLIFY_TOKEN' }, { env: { COOLIFY_TOKEN: 'tok-1' } })).toBe('tok-1');
    expect(resolveCredential({ file: '/run/secrets/pg' }, { env: {}, readFile: () => 'pw-2\n' })).toBe(
      'pw-2',
    );
  });

  it('fails naming the reference, never a value', () => {
    expect(() => resolveCredential({ env: 'MISSING' }, { env: {} })).toThrow(CredentialError);
    expect(() => resolveCredential({ env: 'MISSING' }, { env: {} })).toThrow(
      'environment variable MISSING is not set',
    );
    const err = (() => {
      try {
        resolveCredential(
          { file: '/nope' },
          {
            env: {},
            readFile: () => {
              throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
            },
          },
        );
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(err?.message).toBe('credential file /nope cannot be read (ENOENT)');
  });

  it('accepts only well-formed references', () => {
    expect(CredentialRef.safeParse({ env: 'COOLIFY_TOKEN' }).success).toBe(true);
    expect(CredentialRef.safeParse({ env: 'lower-case' }).success).toBe(false);
    expect(CredentialRef.safeParse({ value: 'inline-secret' }).success).toBe(false);
    expect(CredentialRef.safeParse({ env: 'A', file: '/x' }).success).toBe(false);
  });

  it('redacts every registered secret', () => {
    const r = new SecretRedactor();
    r.add('tok-123456');
    expect(r.redact('calling with tok-123456 and tok-123456')).toBe('calling with [redacted] and [redacted]');
  });
});
