/** Benchmark activities: trivial on purpose, so that the measured cost is the server's and the SDK's. */
export function echo(input: string): Promise<string> {
  return Promise.resolve(input);
}
