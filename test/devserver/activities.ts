/** Activities of the basic conformance workflows. */
export function greet(name: string): Promise<string> {
  return Promise.resolve(`Hello, ${name}!`);
}
