/**
 * Inputs and results of the object-storage activities (B2 MinIO snapshots, B4 Loki archives). Workflows
 * import these as types only.
 */
import { z } from 'zod';

/** An object key: 1 to 1024 bytes of UTF-8, as S3 allows. */
export const S3Key = z
  .string()
  .min(1, 'must not be empty')
  .refine((k) => Buffer.byteLength(k, 'utf8') <= 1024, 'must be at most 1024 bytes of UTF-8')
  .refine((k) => !k.includes('\u0000'), 'must not contain NUL');
export type S3Key = z.infer<typeof S3Key>;

/** Upload one local file to `key` in the configured bucket. */
export const UploadFileInput = z.strictObject({
  key: S3Key,
  /** Absolute or worker-relative path of the file to upload. */
  path: z.string().min(1),
  contentType: z.string().min(1).optional(),
});
export type UploadFileInput = z.infer<typeof UploadFileInput>;

export const UploadFileResult = z.object({
  bucket: z.string(),
  key: z.string(),
  size: z.number().int().nonnegative(),
  /** Hex SHA-256 of the content; also stored as the object's `sha256` user metadata. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  etag: z.string().optional(),
  /** True when the object was already there with the same size and SHA-256 (nothing was sent). */
  skipped: z.boolean(),
});
export type UploadFileResult = z.infer<typeof UploadFileResult>;

/** What `uploadFile` heartbeats; the next attempt reuses `sha256` when the file has not changed. */
export const UploadFileProgress = z.object({
  phase: z.enum(['hashing', 'hashed', 'uploading']),
  key: z.string(),
  size: z.number(),
  mtimeMs: z.number(),
  bytesHashed: z.number().optional(),
  sha256: z.string().optional(),
  bytesUploaded: z.number().optional(),
});
export type UploadFileProgress = z.infer<typeof UploadFileProgress>;

/** Server-side copy inside the configured bucket. */
export const CopyObjectInput = z
  .strictObject({ sourceKey: S3Key, destKey: S3Key })
  .refine((i) => i.sourceKey !== i.destKey, {
    message: 'sourceKey and destKey must differ',
    path: ['destKey'],
  });
export type CopyObjectInput = z.infer<typeof CopyObjectInput>;

export const CopyObjectResult = z.object({
  bucket: z.string(),
  sourceKey: z.string(),
  destKey: z.string(),
  size: z.number().int().nonnegative(),
  etag: z.string().optional(),
  /** True when the destination already held the same object. */
  skipped: z.boolean(),
});
export type CopyObjectResult = z.infer<typeof CopyObjectResult>;

export const ListObjectsInput = z.strictObject({
  /** Key prefix; the empty string lists the whole bucket. */
  prefix: z.string(),
});
export type ListObjectsInput = z.infer<typeof ListObjectsInput>;

export const S3ObjectSummary = z.object({
  key: z.string(),
  size: z.number().int().nonnegative(),
  etag: z.string().optional(),
  /** ISO 8601. */
  lastModified: z.string(),
});
export type S3ObjectSummary = z.infer<typeof S3ObjectSummary>;

export const ListObjectsResult = z.object({
  bucket: z.string(),
  prefix: z.string(),
  objects: z.array(S3ObjectSummary),
  /** How many ListObjectsV2 pages were read. */
  pages: z.number().int().positive(),
});
export type ListObjectsResult = z.infer<typeof ListObjectsResult>;

export const DeleteObjectsInput = z.strictObject({
  keys: z.array(S3Key).max(1_000_000),
});
export type DeleteObjectsInput = z.infer<typeof DeleteObjectsInput>;

export const DeleteObjectsResult = z.object({
  bucket: z.string(),
  /** Distinct keys asked for (absent keys count: deleting them is a no-op). */
  requested: z.number().int().nonnegative(),
  /** DeleteObjects requests sent by this attempt (chunks done by an earlier attempt are not resent). */
  chunksSent: z.number().int().nonnegative(),
  chunks: z.number().int().nonnegative(),
});
export type DeleteObjectsResult = z.infer<typeof DeleteObjectsResult>;

/** What `deleteObjects` heartbeats; the next attempt skips the chunks already done for the same keys. */
export const DeleteObjectsProgress = z.object({
  keysDigest: z.string(),
  chunksDone: z.number().int().nonnegative(),
  chunks: z.number().int().nonnegative(),
});
export type DeleteObjectsProgress = z.infer<typeof DeleteObjectsProgress>;
