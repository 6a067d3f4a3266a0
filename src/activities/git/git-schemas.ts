/**
 * Inputs and results of the git activities: release tags (L1 pre-release `vX.Y.Z-rc.N`, then `vX.Y.Z`)
 * and the commit list a changelog entry is written from (L5).
 */
import { z } from 'zod';

/** `vX.Y.Z` or `vX.Y.Z-rc.N`, semver without leading zeros. */
export const ReleaseTagName = z
  .string()
  .regex(
    /^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-rc\.(0|[1-9]\d*))?$/,
    'must be vX.Y.Z or vX.Y.Z-rc.N (for example v1.2.0 or v1.2.0-rc.1)',
  );
export type ReleaseTagName = z.infer<typeof ReleaseTagName>;

/** A commit id: 7 to 64 hex digits (SHA-1 or SHA-256 repositories). */
export const CommitId = z
  .string()
  .regex(/^[0-9a-f]{7,64}$/, 'must be a commit id (7 to 64 lowercase hex digits)');

/** A branch, tag or commit id usable as a range end; no revision syntax, never an option. */
export const GitRevision = z
  .string()
  .max(255)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, 'must be a branch, tag or commit id')
  .refine(
    (r) => !r.includes('..') && !r.endsWith('.lock') && !r.endsWith('/'),
    'must be a branch, tag or commit id',
  );

export const CreateTagInput = z.strictObject({
  name: ReleaseTagName,
  commit: CommitId,
  /** The annotated tag's message. */
  message: z.string().min(1).max(10_000),
});
export type CreateTagInput = z.infer<typeof CreateTagInput>;

export const CreateTagResult = z.object({
  name: z.string(),
  /** The full commit id the tag points to. */
  commit: z.string(),
  /** True when this call pushed the tag; false when the remote already had it on the same commit. */
  created: z.boolean(),
});
export type CreateTagResult = z.infer<typeof CreateTagResult>;

export const VerifyTagInput = z.strictObject({ name: ReleaseTagName, commit: CommitId });
export type VerifyTagInput = z.infer<typeof VerifyTagInput>;

export const VerifyTagResult = z.object({
  name: z.string(),
  commit: z.string(),
  /** True for an annotated tag (a tag object), false for a lightweight one. */
  annotated: z.boolean(),
});
export type VerifyTagResult = z.infer<typeof VerifyTagResult>;

export const ListCommitsBetweenInput = z.strictObject({
  /** The previous release (tag), exclusive; absent for the first release. */
  from: GitRevision.optional(),
  /** The release commit or branch, inclusive. */
  to: GitRevision,
});
export type ListCommitsBetweenInput = z.infer<typeof ListCommitsBetweenInput>;

export const CommitSummary = z.object({
  sha: z.string(),
  /** More than one parent. */
  merge: z.boolean(),
  authorName: z.string(),
  /** ISO 8601 with the author's offset. */
  authoredAt: z.string(),
  subject: z.string(),
  /** The message body, cut at 2000 characters. */
  body: z.string(),
});
export type CommitSummary = z.infer<typeof CommitSummary>;

export const ListCommitsBetweenResult = z.object({
  from: z.string().nullable(),
  to: z.string(),
  /** Newest first, as `git log` lists them. */
  commits: z.array(CommitSummary),
  /** True when more commits exist than the configured bound. */
  truncated: z.boolean(),
});
export type ListCommitsBetweenResult = z.infer<typeof ListCommitsBetweenResult>;
