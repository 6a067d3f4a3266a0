/** Validates an activity input against its schema; an invalid input is a non-retryable InvalidInput. */
import type { z } from 'zod';
import { FailureType, failure } from '../../errors';

export function parseInput<S extends z.ZodType>(schema: S, input: unknown, activity: string): z.output<S> {
  const parsed = schema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  throw failure(FailureType.InvalidInput, `${activity}: invalid input: ${issues.join('; ')}`, {
    details: { activity, issues },
  });
}
