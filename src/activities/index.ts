/**
 * Builds every activity the worker registers from its dependencies. One folder per external system; the
 * adapters land here as they are written.
 */
export interface ActivityDependencies {
  /** Where diagnostic lines go; credentials never do. */
  log: (message: string) => void;
}

export function createActivities(
  _deps: ActivityDependencies,
): Record<string, (...args: never[]) => Promise<unknown>> {
  return {};
}
