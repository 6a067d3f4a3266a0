import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createS3Activities,
  MIN_PART_SIZE_BYTES,
  type S3ActivitiesOptions,
} from '../../../src/activities/s3/s3-activities';
import { S3TestServer, s3Operation, type SeenRequest } from './s3-test-server';

/** An activity context whose logger stays quiet about the failures these tests provoke on purpose. */
const quietEnv = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
  new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });

/** `env.run` typed with the activity's own input and result. */
function runIn<A extends unknown[], R>(
  env: MockActivityEnvironment,
  fn: (...args: A) => Promise<R>,
  ...args: A
): Promise<R> {
  return env.run<A, R, typeof fn>(fn, ...args);
}

const BUCKET = 'aceh-backups';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

let server: S3TestServer;
let tmp: string;
let admin: S3Client;

beforeAll(async () => {
  server = await S3TestServer.start([BUCKET]);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 's3-activities-'));
  admin = new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
});

afterAll(async () => {
  admin?.destroy();
  await server?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

beforeEach(() => server.clearFaults());

function activities(overrides: Partial<S3ActivitiesOptions> = {}) {
  return createS3Activities({
    endpoint: server.endpoint,
    region: 'us-east-1',
    bucket: BUCKET,
    accessKeyId: 'S3RVER',
    secretAccessKey: SECRET,
    forcePathStyle: true,
    partSizeBytes: MIN_PART_SIZE_BYTES,
    maxAttempts: 1,
    heartbeatIntervalMs: 0,
    ...overrides,
  });
}

function writeFile(name: string, bytes: Buffer): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  return p;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function read(key: string): Promise<Buffer> {
  const out = await admin.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

async function exists(key: string): Promise<boolean> {
  try {
    await admin.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    return true;
  } catch {
    return false;
  }
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected the activity to fail');
}

function envWithBeats(info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) {
  const env = quietEnv(info);
  const beats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  return { env, beats };
}

const op = (name: string) => (r: SeenRequest) => s3Operation(r) === name;

describe('uploadFile', () => {
  it('streams a large file as a multipart upload, records its SHA-256 and heartbeats the bytes sent', async () => {
    const data = randomBytes(2 * MIN_PART_SIZE_BYTES + 123_456);
    const file = writeFile('snapshot.tar', data);
    const { env, beats } = envWithBeats();
    const from = server.requests.length;
    const result = await runIn(env, activities().uploadFile, {
      key: 'minio/2025-10-14/snapshot.tar',
      path: file,
    });

    expect(result).toMatchObject({ bucket: BUCKET, key: 'minio/2025-10-14/snapshot.tar', size: data.length });
    expect(result.sha256).toBe(sha256(data));
    expect(result.skipped).toBe(false);
    expect((await read(result.key)).equals(data)).toBe(true);
    const head = await admin.send(new HeadObjectCommand({ Bucket: BUCKET, Key: result.key }));
    expect(head.Metadata?.['sha256']).toBe(sha256(data));

    const ops = server.operations(from);
    expect(ops.filter((o) => o === 'CreateMultipartUpload')).toHaveLength(1);
    expect(ops.filter((o) => o === 'UploadPart')).toHaveLength(3);
    expect(ops.filter((o) => o === 'CompleteMultipartUpload')).toHaveLength(1);

    const uploaded = beats
      .map((b) => (b as { bytesUploaded?: number }).bytesUploaded)
      .filter((n): n is number => n !== undefined);
    expect(uploaded.length).toBeGreaterThanOrEqual(3);
    expect(uploaded.at(-1)).toBe(data.length);
    expect(JSON.stringify(beats)).not.toContain(SECRET);
  });

  it('sends a small file with one PutObject', async () => {
    const data = Buffer.from('{"level":"info","msg":"archived"}\n');
    const file = writeFile('loki.ndjson', data);
    const from = server.requests.length;
    const result = await runIn(quietEnv(), activities().uploadFile, {
      key: 'loki/2025-10-14.ndjson',
      path: file,
      contentType: 'application/x-ndjson',
    });
    expect(result.size).toBe(data.length);
    expect(server.operations(from)).toContain('PutObject/CopyObject');
    expect(server.operations(from)).not.toContain('CreateMultipartUpload');
    expect((await read('loki/2025-10-14.ndjson')).equals(data)).toBe(true);
  });

  it('skips the upload when the object already has the same size and SHA-256 (retry after success)', async () => {
    const data = randomBytes(MIN_PART_SIZE_BYTES + 10);
    const file = writeFile('again.bin', data);
    const s3 = activities();
    await runIn(quietEnv(), s3.uploadFile, { key: 'b2/again.bin', path: file });
    const from = server.requests.length;
    const second = await runIn(quietEnv(), s3.uploadFile, { key: 'b2/again.bin', path: file });
    expect(second.skipped).toBe(true);
    expect(second.sha256).toBe(sha256(data));
    expect(server.operations(from)).toEqual(['HeadObject']);
  });

  it('replaces an object at the key whose content differs', async () => {
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'b2/replaced.bin', Body: 'old content' }));
    const data = Buffer.from('new content, longer than before');
    const result = await runIn(quietEnv(), activities().uploadFile, {
      key: 'b2/replaced.bin',
      path: writeFile('replaced.bin', data),
    });
    expect(result.skipped).toBe(false);
    expect((await read('b2/replaced.bin')).equals(data)).toBe(true);
  });

  it('resumes with the hash heartbeated by the previous attempt when the file is unchanged', async () => {
    const data = randomBytes(4096);
    const file = writeFile('resume.bin', data);
    const stat = fs.statSync(file);
    const previous = {
      phase: 'uploading',
      key: 'b2/resume.bin',
      size: stat.size,
      mtimeMs: stat.mtimeMs,
      sha256: sha256(data),
      bytesUploaded: 0,
    };
    const { env, beats } = envWithBeats({ attempt: 2, heartbeatDetails: previous });
    const result = await runIn(env, activities().uploadFile, { key: 'b2/resume.bin', path: file });
    expect(result.sha256).toBe(sha256(data));
    expect(beats.some((b) => (b as { phase: string }).phase === 'hashing')).toBe(false);

    // A changed file (other mtime) is hashed again.
    const stale = { ...previous, mtimeMs: stat.mtimeMs - 1000, sha256: 'f'.repeat(64) };
    const again = envWithBeats({ attempt: 3, heartbeatDetails: stale });
    const result2 = await runIn(again.env, activities().uploadFile, { key: 'b2/resume.bin', path: file });
    expect(result2.sha256).toBe(sha256(data));
    expect(again.beats.some((b) => (b as { phase: string }).phase === 'hashing')).toBe(true);
  });

  it('aborts the multipart upload when the activity is cancelled', async () => {
    const data = randomBytes(3 * MIN_PART_SIZE_BYTES);
    const file = writeFile('cancelled.bin', data);
    const gate = server.hold(op('UploadPart'));
    const from = server.requests.length;
    const env = quietEnv();
    const running = runIn(env, activities({ queueSize: 1 }).uploadFile, {
      key: 'b2/cancelled.bin',
      path: file,
    });
    await vi.waitFor(() => expect(gate.held()).toBeGreaterThan(0), { timeout: 10_000 });
    env.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
    gate.release();
    await vi.waitFor(() => expect(server.operations(from)).toContain('AbortMultipartUpload'), {
      timeout: 10_000,
    });
    expect(server.operations(from)).not.toContain('CompleteMultipartUpload');
    expect(await exists('b2/cancelled.bin')).toBe(false);
  });

  it('fails with NotFound for a missing local file and InvalidInput for a bad key', async () => {
    const missing = await failureOf(
      runIn(quietEnv(), activities().uploadFile, { key: 'x', path: path.join(tmp, 'nope') }),
    );
    expect(missing.type).toBe('NotFound');
    expect(missing.nonRetryable).toBe(true);
    const bad = await failureOf(
      runIn(quietEnv(), activities().uploadFile, { key: '', path: path.join(tmp, 'nope') }),
    );
    expect(bad.type).toBe('InvalidInput');
  });

  it('classifies a failed part as retryable UpstreamUnavailable and aborts the multipart upload', async () => {
    const file = writeFile('part-fails.bin', randomBytes(MIN_PART_SIZE_BYTES + 1));
    server.failNext(op('UploadPart'), {
      status: 500,
      code: 'InternalError',
      message: 'We encountered an internal error.',
    });
    const from = server.requests.length;
    const f = await failureOf(
      runIn(quietEnv(), activities({ queueSize: 1 }).uploadFile, {
        key: 'b2/part-fails.bin',
        path: file,
      }),
    );
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
    expect(server.operations(from)).toContain('AbortMultipartUpload');
  });
});

describe('S3 failure classification (real client, scripted answers)', () => {
  const headOf = (key: string) => (r: SeenRequest) => r.method === 'HEAD' && r.url.pathname.endsWith(key);

  it.each([
    [{ status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' }, 'RateLimited', false],
    [
      { status: 503, code: 'ServiceUnavailable', message: 'Service is unable to handle request.' },
      'UpstreamUnavailable',
      false,
    ],
    [
      { status: 500, code: 'InternalError', message: 'We encountered an internal error.' },
      'UpstreamUnavailable',
      false,
    ],
    [{ status: 403, code: 'AccessDenied', message: 'Access Denied' }, 'Unauthorized', true],
    [
      {
        status: 403,
        code: 'SignatureDoesNotMatch',
        message: 'The request signature we calculated does not match',
      },
      'Unauthorized',
      true,
    ],
    [{ status: 404, code: 'NoSuchBucket', message: 'The specified bucket does not exist' }, 'NotFound', true],
    [
      {
        status: 501,
        code: 'NotImplemented',
        message: 'A header you provided implies functionality that is not implemented',
      },
      'UpstreamRejected',
      true,
    ],
    [{ status: 400, code: 'InvalidArgument', message: 'Invalid argument' }, 'UpstreamRejected', true],
  ])('%j -> %s (nonRetryable %s)', async (fault, type, nonRetryable) => {
    server.failNext((r) => s3Operation(r) === 'ListObjectsV2', fault);
    const f = await failureOf(runIn(quietEnv(), activities().listObjects, { prefix: 'any/' }));
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(nonRetryable);
    expect(f.message).toContain(fault.code);
  });

  it('never lets the secret key into a failure, even when the server echoes it', async () => {
    server.failNext(op('ListObjectsV2'), {
      status: 403,
      code: 'SignatureDoesNotMatch',
      message: `Check your key and signing method (secret ${SECRET})`,
    });
    const f = await failureOf(runIn(quietEnv(), activities().listObjects, { prefix: '' }));
    expect(f.type).toBe('Unauthorized');
    expect(f.message).not.toContain(SECRET);
    expect(f.message).toContain('[redacted]');
    expect(JSON.stringify(f.details)).not.toContain(SECRET);
  });

  it('honours Retry-After on a throttled answer', async () => {
    server.failNext(op('ListObjectsV2'), {
      status: 503,
      code: 'SlowDown',
      message: 'Please reduce your request rate.',
      headers: { 'retry-after': '7' },
    });
    const f = await failureOf(runIn(quietEnv(), activities().listObjects, { prefix: '' }));
    expect(f.type).toBe('RateLimited');
    expect(f.nextRetryDelay).toBe(7000);
  });

  it('maps a bare 403 and 503 on HEAD (no body) by status', async () => {
    server.failNext(headOf('/forbidden.bin'), { status: 403, code: 'AccessDenied', message: '' });
    const f = await failureOf(
      runIn(quietEnv(), activities().copyObject, { sourceKey: 'forbidden.bin', destKey: 'y' }),
    );
    expect(f.type).toBe('Unauthorized');
    server.failNext(headOf('/busy.bin'), { status: 503, code: 'SlowDown', message: '' });
    const g = await failureOf(
      runIn(quietEnv(), activities().copyObject, { sourceKey: 'busy.bin', destKey: 'y' }),
    );
    expect(g.type).toBe('UpstreamUnavailable');
    expect(g.nonRetryable).toBe(false);
  });

  it('reports an unknown access key id (refused by s3rver itself) as Unauthorized', async () => {
    const f = await failureOf(
      runIn(quietEnv(), activities({ accessKeyId: 'NOT-A-KEY' }).listObjects, { prefix: '' }),
    );
    expect(f.type).toBe('Unauthorized');
    expect(f.message).toContain('InvalidAccessKeyId');
  });

  it('reports a missing bucket (s3rver itself) as NotFound', async () => {
    const f = await failureOf(
      runIn(quietEnv(), activities({ bucket: 'no-such-bucket' }).listObjects, { prefix: '' }),
    );
    expect(f.type).toBe('NotFound');
    expect(f.message).toContain('NoSuchBucket');
  });

  it('reports a dropped connection and a closed port as retryable UpstreamUnavailable', async () => {
    server.failNext(op('ListObjectsV2'), { dropConnection: true });
    const dropped = await failureOf(runIn(quietEnv(), activities().listObjects, { prefix: '' }));
    expect(dropped.type).toBe('UpstreamUnavailable');
    expect(dropped.nonRetryable).toBe(false);
    const closed = await failureOf(
      runIn(quietEnv(), activities({ endpoint: 'http://127.0.0.1:9' }).listObjects, { prefix: '' }),
    );
    expect(closed.type).toBe('UpstreamUnavailable');
    expect(closed.message).toContain('could not be reached');
  });
});

describe('copyObject', () => {
  it('copies server-side keeping the metadata, and skips when the destination already matches', async () => {
    const data = randomBytes(2048);
    const s3 = activities();
    await runIn(quietEnv(), s3.uploadFile, { key: 'b2/daily/src.bin', path: writeFile('src.bin', data) });
    const first = await runIn(quietEnv(), s3.copyObject, {
      sourceKey: 'b2/daily/src.bin',
      destKey: 'b2/weekly/src.bin',
    });
    expect(first).toMatchObject({ skipped: false, size: data.length });
    expect((await read('b2/weekly/src.bin')).equals(data)).toBe(true);
    const head = await admin.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'b2/weekly/src.bin' }));
    expect(head.Metadata?.['sha256']).toBe(sha256(data));

    const from = server.requests.length;
    const second = await runIn(quietEnv(), s3.copyObject, {
      sourceKey: 'b2/daily/src.bin',
      destKey: 'b2/weekly/src.bin',
    });
    expect(second.skipped).toBe(true);
    expect(server.operations(from)).toEqual(['HeadObject', 'HeadObject']);
  });

  it('overwrites a destination that holds something else', async () => {
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'c/src', Body: 'the source' }));
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'c/dst', Body: 'stale' }));
    const out = await runIn(quietEnv(), activities().copyObject, { sourceKey: 'c/src', destKey: 'c/dst' });
    expect(out.skipped).toBe(false);
    expect((await read('c/dst')).toString()).toBe('the source');
  });

  it('fails with NotFound for a missing source and InvalidInput for identical keys', async () => {
    const f = await failureOf(
      runIn(quietEnv(), activities().copyObject, { sourceKey: 'c/absent', destKey: 'c/x' }),
    );
    expect(f.type).toBe('NotFound');
    const g = await failureOf(
      runIn(quietEnv(), activities().copyObject, { sourceKey: 'c/src', destKey: 'c/src' }),
    );
    expect(g.type).toBe('InvalidInput');
  });

  it('classifies a refused CopyObject', async () => {
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'c/src2', Body: 'x' }));
    server.failNext((r) => r.method === 'PUT' && r.url.pathname.endsWith('/c/dst2'), {
      status: 403,
      code: 'AccessDenied',
      message: 'Access Denied',
    });
    const f = await failureOf(
      runIn(quietEnv(), activities().copyObject, { sourceKey: 'c/src2', destKey: 'c/dst2' }),
    );
    expect(f.type).toBe('Unauthorized');
    expect(f.message).toContain('CopyObject');
  });
});

describe('listObjects', () => {
  beforeAll(async () => {
    for (let i = 0; i < 7; i++) {
      await admin.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: `list/day-${i}.tar`, Body: `object ${i}` }),
      );
    }
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'listing-other/x', Body: 'x' }));
  });

  it('reads every page under the prefix and heartbeats per page', async () => {
    const { env, beats } = envWithBeats();
    const out = await runIn(env, activities({ listPageSize: 3 }).listObjects, { prefix: 'list/' });
    expect(out.pages).toBe(3);
    expect(out.objects.map((o) => o.key)).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `list/day-${i}.tar`));
    expect(out.objects[0]).toMatchObject({ size: 'object 0'.length });
    expect(new Date(out.objects[0]!.lastModified).getTime()).toBeGreaterThan(0);
    expect(beats).toEqual([
      { prefix: 'list/', pages: 1, objects: 3 },
      { prefix: 'list/', pages: 2, objects: 6 },
      { prefix: 'list/', pages: 3, objects: 7 },
    ]);
  });

  it('returns an empty listing for an unused prefix', async () => {
    const out = await runIn(quietEnv(), activities().listObjects, { prefix: 'nothing-here/' });
    expect(out).toMatchObject({ objects: [], pages: 1 });
  });

  it('refuses a listing larger than the configured bound', async () => {
    const f = await failureOf(
      runIn(quietEnv(), activities({ listPageSize: 2, maxListedObjects: 4 }).listObjects, {
        prefix: 'list/',
      }),
    );
    expect(f.type).toBe('PolicyViolation');
  });

  it('fails with ContractViolation when a truncated page has no continuation token', async () => {
    server.failNext(op('ListObjectsV2'), {
      status: 200,
      xml:
        '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
        `<Name>${BUCKET}</Name><Prefix>list/</Prefix><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated>` +
        '<Contents><Key>list/day-0.tar</Key><Size>8</Size><LastModified>2025-10-14T00:00:00.000Z</LastModified></Contents>' +
        '</ListBucketResult>',
    });
    const f = await failureOf(runIn(quietEnv(), activities().listObjects, { prefix: 'list/' }));
    expect(f.type).toBe('ContractViolation');
  });

  it('fails with ContractViolation when a 200 answer is not S3 XML', async () => {
    server.failNext(op('ListObjectsV2'), { status: 200, xml: '<html><body>Welcome to nginx!' });
    const f = await failureOf(runIn(quietEnv(), activities().listObjects, { prefix: 'list/' }));
    expect(f.type).toBe('ContractViolation');
    expect(f.nonRetryable).toBe(true);
  });

  it('is cancellable between pages', async () => {
    const gate = server.hold(op('ListObjectsV2'));
    const env = quietEnv();
    const running = runIn(env, activities({ listPageSize: 3 }).listObjects, { prefix: 'list/' });
    await vi.waitFor(() => expect(gate.held()).toBe(1));
    env.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
    gate.release();
  });
});

describe('deleteObjects', () => {
  it('deletes in chunks of 1000 and treats absent keys as deleted', async () => {
    // One object per folder: s3rver deletes a batch concurrently and races removing a shared empty folder.
    const present = ['del-a/1', 'del-b/2', 'del-c/3'];
    for (const key of present)
      await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
    const keys = [...present, ...Array.from({ length: 2100 }, (_, i) => `del/absent-${i}`)];
    const { env, beats } = envWithBeats();
    const from = server.requests.length;
    const out = await runIn(env, activities().deleteObjects, { keys: [...keys, 'del-a/1'] });
    expect(out).toMatchObject({ requested: keys.length, chunks: 3, chunksSent: 3 });
    expect(server.operations(from).filter((o) => o === 'DeleteObjects')).toHaveLength(3);
    for (const key of present) expect(await exists(key)).toBe(false);
    expect(beats.map((b) => (b as { chunksDone: number }).chunksDone)).toEqual([1, 2, 3]);

    // Running it again is harmless: everything is absent now.
    const again = await runIn(quietEnv(), activities().deleteObjects, { keys });
    expect(again.chunksSent).toBe(3);
  });

  it('resumes after the chunks a previous attempt heartbeated as done', async () => {
    const keys = Array.from({ length: 2500 }, (_, i) => `resume-del/${i}`);
    const first = envWithBeats();
    await runIn(first.env, activities().deleteObjects, { keys });
    const afterTwo = first.beats[1];
    const from = server.requests.length;
    const out = await runIn(
      quietEnv({ attempt: 2, heartbeatDetails: afterTwo }),
      activities().deleteObjects,
      { keys },
    );
    expect(out.chunksSent).toBe(1);
    expect(server.operations(from).filter((o) => o === 'DeleteObjects')).toHaveLength(1);

    // Details heartbeated for other keys are ignored.
    const other = await runIn(
      quietEnv({ attempt: 2, heartbeatDetails: afterTwo }),
      activities().deleteObjects,
      { keys: keys.slice(1) },
    );
    expect(other.chunksSent).toBe(3);
  });

  it('classifies a per-key error inside a 200 answer', async () => {
    server.failNext(op('DeleteObjects'), {
      status: 200,
      xml:
        '<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
        '<Error><Key>del/locked</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>',
    });
    const f = await failureOf(
      runIn(quietEnv(), activities().deleteObjects, { keys: ['del/locked', 'del/free'] }),
    );
    expect(f.type).toBe('Unauthorized');
    expect(f.message).toContain('del/locked');
  });

  it('classifies a throttled DeleteObjects as retryable', async () => {
    server.failNext(op('DeleteObjects'), {
      status: 503,
      code: 'SlowDown',
      message: 'Please reduce your request rate.',
    });
    const f = await failureOf(runIn(quietEnv(), activities().deleteObjects, { keys: ['del/z'] }));
    expect(f.type).toBe('RateLimited');
    expect(f.nonRetryable).toBe(false);
  });

  it('accepts an empty key list and rejects an invalid key', async () => {
    const out = await runIn(quietEnv(), activities().deleteObjects, { keys: [] });
    expect(out).toMatchObject({ requested: 0, chunks: 0, chunksSent: 0 });
    const f = await failureOf(runIn(quietEnv(), activities().deleteObjects, { keys: [''] }));
    expect(f.type).toBe('InvalidInput');
  });
});
