/**
 * Object storage over the S3 API (MinIO or any S3-compatible server): the B2 daily snapshot upload, the
 * B4 log archive, and the retention jobs that list and delete old objects.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { log } from '@temporalio/activity';
import { SecretRedactor } from '../../config/credential-ref';
import { FailureType, failure } from '../../errors';
import { cancellationSignal, heartbeat, lastHeartbeat, parseActivityInput } from '../activity-support';
import { classifyS3Answer, classifyS3Failure, s3ErrorCode, s3ErrorStatus } from './classify-s3-failure';
import {
  CopyObjectInput,
  type CopyObjectResult,
  DeleteObjectsInput,
  DeleteObjectsProgress,
  type DeleteObjectsResult,
  ListObjectsInput,
  type ListObjectsResult,
  type S3ObjectSummary,
  UploadFileInput,
  UploadFileProgress,
  type UploadFileResult,
} from './s3-schemas';

/** S3 refuses parts below 5 MiB (except the last one). */
export const MIN_PART_SIZE_BYTES = 5 * 1024 * 1024;
/** DeleteObjects takes at most 1000 keys per request. */
export const DELETE_CHUNK_SIZE = 1000;
/** The metadata key (`x-amz-meta-sha256`) under which uploads record their content hash. */
export const SHA256_METADATA_KEY = 'sha256';

export interface S3ActivitiesOptions {
  /** e.g. `https://minio.acehcommerce.id`; AWS itself when omitted. */
  endpoint?: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  /** Resolved by the worker; it never appears in inputs, results, heartbeats or failures. */
  secretAccessKey: string;
  /** MinIO and most S3-compatible servers need path-style URLs (`/bucket/key`). */
  forcePathStyle?: boolean;
  /** Multipart part size; at least 5 MiB; 16 MiB by default. */
  partSizeBytes?: number;
  /** Parts uploaded in parallel; 4 by default. */
  queueSize?: number;
  /** Keys per ListObjectsV2 page (at most 1000, the default). */
  listPageSize?: number;
  /** Refuse to return listings larger than this (the result travels through workflow history); 20 000. */
  maxListedObjects?: number;
  /** Attempts per request inside one activity attempt (the SDK's own retry); 3 by default. */
  maxAttempts?: number;
  /** Per-request timeout; 60 s by default. */
  requestTimeoutMs?: number;
  /** Minimum interval between progress heartbeats; 1 s by default. */
  heartbeatIntervalMs?: number;
  /** Inject a client (tests); otherwise one is built from the options above. */
  client?: S3Client;
}

/** Calls `fn` at most once per interval, except when `force` is set. */
function throttled<T>(intervalMs: number, fn: (value: T) => void): (value: T, force?: boolean) => void {
  let last = 0;
  return (value, force = false) => {
    const now = Date.now();
    if (force || now - last >= intervalMs) {
      last = now;
      fn(value);
    }
  };
}

/**
 * Builds the S3 activities over one bucket.
 *
 * - `uploadFile` streams a file with a multipart upload (lib-storage), stores its SHA-256 as metadata and
 *   heartbeats the bytes sent. Idempotent by check-then-act: when the object already exists with the same
 *   size and `sha256` metadata nothing is sent (`skipped`). A retry reuses the hash heartbeated by the
 *   previous attempt when the file is unchanged. Cancellation aborts the multipart upload.
 * - `copyObject` copies server-side; skipped when the destination already has the source's ETag, or the
 *   same size and `sha256` metadata (a multipart source's ETag changes on copy). Objects above 5 GiB, which
 *   need UploadPartCopy, are refused with `UpstreamRejected`.
 * - `listObjects` reads every ListObjectsV2 page under a prefix, heartbeating per page; read-only, a retry
 *   starts again from the first page.
 * - `deleteObjects` deletes in chunks of 1000; deleting an absent key succeeds, so retries are harmless,
 *   and a retry skips the chunks the previous attempt heartbeated as done.
 *
 * Failures follow `classifyS3Failure` (Unauthorized, NotFound, RateLimited, UpstreamUnavailable,
 * UpstreamRejected, ContractViolation); invalid input is `InvalidInput`; a missing local file is
 * `NotFound`. No message contains the secret access key.
 */
export function createS3Activities(options: S3ActivitiesOptions) {
  const { bucket } = options;
  const partSize = options.partSizeBytes ?? 16 * 1024 * 1024;
  if (partSize < MIN_PART_SIZE_BYTES)
    throw new Error(`partSizeBytes must be at least ${MIN_PART_SIZE_BYTES}`);
  const listPageSize = Math.min(options.listPageSize ?? 1000, 1000);
  const maxListed = options.maxListedObjects ?? 20_000;
  const heartbeatEvery = options.heartbeatIntervalMs ?? 1000;
  const redactor = new SecretRedactor();
  redactor.add(options.secretAccessKey);
  const redact = (text: string): string => redactor.redact(text);

  const client =
    options.client ??
    new S3Client({
      endpoint: options.endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle ?? false,
      credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey },
      maxAttempts: options.maxAttempts ?? 3,
      requestHandler: { requestTimeout: options.requestTimeoutMs ?? 60_000, connectionTimeout: 10_000 },
    });

  const classify = (err: unknown, operation: string, key?: string) =>
    classifyS3Failure(err, { operation, bucket, key, redact });

  /** Runs one S3 call with the activity's cancellation; rethrows the cancellation as is. */
  async function call<T>(
    operation: string,
    key: string | undefined,
    run: (signal: AbortSignal) => Promise<T>,
  ) {
    const signal = cancellationSignal();
    try {
      return await run(signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw classify(err, operation, key);
    }
  }

  interface Head {
    size: number;
    etag?: string;
    sha256?: string;
  }

  /** HeadObject, with "absent" as undefined instead of a failure. */
  async function head(key: string): Promise<Head | undefined> {
    const signal = cancellationSignal();
    try {
      const out = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), {
        abortSignal: signal,
      });
      return {
        size: out.ContentLength ?? 0,
        etag: out.ETag,
        sha256: out.Metadata?.[SHA256_METADATA_KEY],
      };
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const code = s3ErrorCode(err);
      // A HEAD answer has no body: a missing key is a bare 404; a missing bucket must stay a failure.
      if (s3ErrorStatus(err) === 404 && code !== 'NoSuchBucket') return undefined;
      throw classify(err, 'HeadObject', key);
    }
  }

  async function hashFile(path: string, report: (bytes: number) => void): Promise<string> {
    const signal = cancellationSignal();
    const hash = createHash('sha256');
    let bytes = 0;
    const stream = fs.createReadStream(path, { highWaterMark: 1024 * 1024 });
    const onAbort = () => stream.destroy();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const chunk of stream) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
        report(bytes);
      }
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw localFileFailure(err, path);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    if (signal.aborted) throw signal.reason;
    return hash.digest('hex');
  }

  function localFileFailure(err: unknown, path: string) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'ENOENT') {
      return failure(FailureType.NotFound, `uploadFile: the local file ${path} does not exist`, {
        details: { path, code },
      });
    }
    return failure(FailureType.InvalidInput, `uploadFile: the local file ${path} cannot be read (${code})`, {
      details: { path, code },
    });
  }

  async function abortMultipart(uploadId: string | undefined, key: string): Promise<void> {
    if (!uploadId) return;
    try {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
    } catch (err) {
      // Best effort: a bucket lifecycle rule for incomplete uploads is the backstop.
      log.warn('S3 AbortMultipartUpload failed; the parts stay until a lifecycle rule removes them', {
        bucket,
        key,
        code: s3ErrorCode(err),
      });
    }
  }

  async function uploadFile(input: UploadFileInput): Promise<UploadFileResult> {
    const { key, path, contentType } = parseActivityInput(UploadFileInput, input, 'uploadFile');
    const signal = cancellationSignal();
    let stat: fs.Stats;
    try {
      stat = await fs.promises.stat(path);
    } catch (err) {
      throw localFileFailure(err, path);
    }
    if (!stat.isFile()) {
      throw failure(FailureType.InvalidInput, `uploadFile: ${path} is not a regular file`, {
        details: { path },
      });
    }
    const base = { key, size: stat.size, mtimeMs: stat.mtimeMs };
    const beat = throttled<UploadFileProgress>(heartbeatEvery, (p) => heartbeat(p));

    const previous = UploadFileProgress.safeParse(lastHeartbeat());
    const reusable =
      previous.success &&
      previous.data.key === key &&
      previous.data.size === stat.size &&
      previous.data.mtimeMs === stat.mtimeMs &&
      previous.data.sha256 !== undefined
        ? previous.data.sha256
        : undefined;
    const sha256 =
      reusable ?? (await hashFile(path, (bytesHashed) => beat({ ...base, phase: 'hashing', bytesHashed })));
    beat({ ...base, phase: 'hashed', sha256 }, true);

    const existing = await head(key);
    if (existing && existing.size === stat.size && existing.sha256 === sha256) {
      return { bucket, key, size: stat.size, sha256, etag: existing.etag, skipped: true };
    }

    const body = fs.createReadStream(path, { highWaterMark: 1024 * 1024 });
    const upload = new Upload({
      client,
      params: {
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentLength: stat.size,
        ContentType: contentType,
        Metadata: { [SHA256_METADATA_KEY]: sha256 },
      },
      partSize,
      queueSize: options.queueSize ?? 4,
      // We abort ourselves: lib-storage would replace the original error with the abort's own failure.
      leavePartsOnError: true,
    });
    upload.on('httpUploadProgress', (p) =>
      beat({ ...base, phase: 'uploading', sha256, bytesUploaded: p.loaded ?? 0 }),
    );
    const onAbort = () => void upload.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let etag: string | undefined;
    try {
      const out = await upload.done();
      etag = out.ETag;
    } catch (err) {
      await abortMultipart(upload.uploadId, key);
      if (signal.aborted) throw signal.reason;
      if (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT')
        throw localFileFailure(err, path);
      throw classify(err, upload.uploadId ? 'multipart upload' : 'PutObject', key);
    } finally {
      signal.removeEventListener('abort', onAbort);
      body.destroy();
    }
    beat({ ...base, phase: 'uploading', sha256, bytesUploaded: stat.size }, true);

    const stored = await head(key);
    if (!stored || stored.size !== stat.size) {
      throw failure(
        FailureType.ContractViolation,
        `S3 upload of s3://${bucket}/${key} reported success but the object holds ${stored?.size ?? 'nothing'} instead of ${stat.size} bytes`,
        { details: { bucket, key, expected: stat.size, stored: stored?.size ?? null } },
      );
    }
    return { bucket, key, size: stat.size, sha256, etag: etag ?? stored.etag, skipped: false };
  }

  async function copyObject(input: CopyObjectInput): Promise<CopyObjectResult> {
    const { sourceKey, destKey } = parseActivityInput(CopyObjectInput, input, 'copyObject');
    const source = await head(sourceKey);
    if (!source) {
      throw failure(FailureType.NotFound, `S3 copy source s3://${bucket}/${sourceKey} does not exist`, {
        details: { system: 'S3', operation: 'CopyObject', bucket, key: sourceKey },
      });
    }
    const dest = await head(destKey);
    const sameEtag = dest?.etag !== undefined && dest.etag === source.etag;
    const sameContent =
      dest !== undefined &&
      dest.size === source.size &&
      source.sha256 !== undefined &&
      dest.sha256 === source.sha256;
    if (dest && (sameEtag || sameContent)) {
      return { bucket, sourceKey, destKey, size: dest.size, etag: dest.etag, skipped: true };
    }
    if (source.size > 5 * 1024 * 1024 * 1024) {
      throw failure(
        FailureType.UpstreamRejected,
        `S3 CopyObject is limited to 5 GiB and s3://${bucket}/${sourceKey} holds ${source.size} bytes; multipart copy is not implemented`,
        { details: { bucket, key: sourceKey, size: source.size } },
      );
    }
    const out = await call('CopyObject', destKey, (abortSignal) =>
      client.send(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: destKey,
          CopySource: `${bucket}/${sourceKey.split('/').map(encodeURIComponent).join('/')}`,
          MetadataDirective: 'COPY',
        }),
        { abortSignal },
      ),
    );
    return {
      bucket,
      sourceKey,
      destKey,
      size: source.size,
      etag: out.CopyObjectResult?.ETag,
      skipped: false,
    };
  }

  async function listObjects(input: ListObjectsInput): Promise<ListObjectsResult> {
    const { prefix } = parseActivityInput(ListObjectsInput, input, 'listObjects');
    const objects: S3ObjectSummary[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await call('ListObjectsV2', prefix || undefined, (abortSignal) =>
        client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix || undefined,
            MaxKeys: listPageSize,
            ContinuationToken: token,
          }),
          { abortSignal },
        ),
      );
      pages += 1;
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        objects.push({
          key: o.Key,
          size: o.Size ?? 0,
          etag: o.ETag,
          lastModified: (o.LastModified ?? new Date(0)).toISOString(),
        });
      }
      if (objects.length > maxListed) {
        throw failure(
          FailureType.PolicyViolation,
          `S3 listing of s3://${bucket}/${prefix} exceeds ${maxListed} objects; list a narrower prefix`,
          { details: { bucket, prefix, maxListedObjects: maxListed } },
        );
      }
      heartbeat({ prefix, pages, objects: objects.length });
      if (page.IsTruncated && !page.NextContinuationToken) {
        throw failure(
          FailureType.ContractViolation,
          `S3 ListObjectsV2 of s3://${bucket}/${prefix} says it is truncated but gives no continuation token`,
          { details: { bucket, prefix, pages } },
        );
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return { bucket, prefix, objects, pages };
  }

  async function deleteObjects(input: DeleteObjectsInput): Promise<DeleteObjectsResult> {
    const { keys } = parseActivityInput(DeleteObjectsInput, input, 'deleteObjects');
    const unique = [...new Set(keys)];
    const chunks: string[][] = [];
    for (let i = 0; i < unique.length; i += DELETE_CHUNK_SIZE)
      chunks.push(unique.slice(i, i + DELETE_CHUNK_SIZE));
    const keysDigest = createHash('sha256').update(unique.join('\n')).digest('hex');
    const previous = DeleteObjectsProgress.safeParse(lastHeartbeat());
    const start =
      previous.success && previous.data.keysDigest === keysDigest
        ? Math.min(previous.data.chunksDone, chunks.length)
        : 0;
    let sent = 0;
    for (let i = start; i < chunks.length; i++) {
      const chunk = chunks[i] ?? [];
      const out = await call('DeleteObjects', undefined, (abortSignal) =>
        client.send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true },
          }),
          { abortSignal },
        ),
      );
      sent += 1;
      // Per-key errors come back in a 200 answer; an absent key is not one (S3 reports it as deleted).
      const errors = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      const first = errors[0];
      if (first) {
        throw classifyS3Answer(
          { code: first.Code ?? 'Error', message: first.Message },
          {
            operation: `DeleteObjects (${errors.length} of ${chunk.length} keys failed)`,
            bucket,
            key: first.Key,
            redact,
          },
        );
      }
      heartbeat({ keysDigest, chunksDone: i + 1, chunks: chunks.length } satisfies DeleteObjectsProgress);
    }
    return { bucket, requested: unique.length, chunksSent: sent, chunks: chunks.length };
  }

  return { uploadFile, copyObject, listObjects, deleteObjects };
}

export type S3Activities = ReturnType<typeof createS3Activities>;
