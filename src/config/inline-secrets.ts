/**
 * Finds secrets written straight into a configuration document: a value under a secret-looking key
 * (`token: "abc"`, `password: hunter2`) or a value that has the shape of a well-known credential (a GitHub
 * token, a JWT, a private key) under any key. Configuration holds references only (H2). The findings name
 * the place and the kind of secret, never the value. Deterministic: no I/O.
 */

export interface InlineSecret {
  path: (string | number)[];
  message: string;
}

/** Key names (lower case, without `-` and `_`) that hold secrets. */
const SECRET_KEY_SUFFIXES = [
  'token',
  'secret',
  'password',
  'passwd',
  'passphrase',
  'credential',
  'credentials',
  'apikey',
  'privatekey',
  'secretkey',
  'accesskey',
  'accesskeyid',
  'servicerolekey',
  'anonkey',
  'sshkey',
  'signingkey',
  'encryptionkey',
];

/** Whether a key (any case, `-` or `_` separated or camelCase) names a secret. */
export function isSecretKey(key: string): boolean {
  const k = key.toLowerCase().replace(/[-_]/g, '');
  return SECRET_KEY_SUFFIXES.some((suffix) => k.endsWith(suffix));
}

const SECRET_SHAPES: readonly { kind: string; pattern: RegExp }[] = [
  { kind: 'a private key', pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----/ },
  { kind: 'a GitHub token', pattern: /\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})\b/ },
  { kind: 'a GitLab token', pattern: /\bglpat-[A-Za-z0-9_-]{20,}\b/ },
  { kind: 'a Slack token', pattern: /\bxox[abprs]-[A-Za-z0-9-]{10,}\b/ },
  { kind: 'an AWS access key', pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/ },
  { kind: 'a JSON web token', pattern: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+/ },
  { kind: 'a Telegram bot token', pattern: /\b\d{6,12}:AA[A-Za-z0-9_-]{30,}\b/ },
];

const ADVICE = 'configuration holds only references; write {env: NAME} or {file: PATH}';

/** Every inline secret in `document`, in document order. */
export function findInlineSecrets(document: unknown): InlineSecret[] {
  const found: InlineSecret[] = [];
  const visit = (node: unknown, path: (string | number)[]): void => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => visit(item, [...path, i]));
      return;
    }
    if (node !== null && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (isSecretKey(key) && (typeof value === 'string' || typeof value === 'number')) {
          found.push({ path: [...path, key], message: `is an inline secret: ${ADVICE}` });
        } else {
          visit(value, [...path, key]);
        }
      }
      return;
    }
    if (typeof node === 'string') {
      const shape = SECRET_SHAPES.find((s) => s.pattern.test(node));
      if (shape) found.push({ path, message: `looks like ${shape.kind}: ${ADVICE}` });
    }
  };
  visit(document, []);
  return found;
}
