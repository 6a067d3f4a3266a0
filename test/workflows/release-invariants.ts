/**
 * Invariants every release path must keep, asserted by the end-to-end tests:
 * - no production traffic moves before the required approvals are in;
 * - after a rollback, production runs exactly the digest it ran before the release.
 */
import { expect } from 'vitest';
import type { ReleaseStatus } from '../../src/schemas/release';
import type { Sandbox } from '../../src/sandbox/sandbox';

/**
 * The compensations named by `inOrder` (name prefixes) all ran, in that order (others may run between
 * them), and no compensation failed.
 */
export function expectCompensations(status: ReleaseStatus, inOrder: readonly string[]): void {
  const names = status.compensations.map((c) => c.name);
  const at = inOrder.map((prefix) => names.findIndex((n) => n.startsWith(prefix)));
  expect(
    at.every((i) => i >= 0),
    `${inOrder.join(', ')} in ${names.join(' | ')}`,
  ).toBe(true);
  expect(
    [...at].sort((a, b) => a - b),
    `order of ${names.join(' | ')}`,
  ).toEqual(at);
  expect(
    status.compensations.filter((c) => c.status === 'failed'),
    JSON.stringify(status.compensations),
  ).toEqual([]);
}

/** Steps that move production user traffic (switch, canary weight, restore). */
const TRAFFIC_STEP = /^production: (switch |.*% to )/;

export function expectNoTrafficBeforeApproval(status: ReleaseStatus): void {
  const moves = status.steps.filter((s) => TRAFFIC_STEP.test(s.name));
  if (moves.length === 0) return;
  const approvals = status.approvals.filter((a) => a.decision === 'approved');
  expect(approvals.length, 'production traffic moved without any approval').toBeGreaterThanOrEqual(
    status.requiredApprovals ?? 1,
  );
  const approvedAt = Math.max(...approvals.map((a) => Date.parse(a.at)));
  for (const move of moves) {
    expect(
      Date.parse(move.startedAt),
      `${move.name} started before the last approval`,
    ).toBeGreaterThanOrEqual(approvedAt);
  }
}

/** The digest each production service serves now: the live colour's application, its tag, the registry. */
export async function liveDigests(sandbox: Sandbox): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {};
  for (const [name, service] of Object.entries(sandbox.config.services)) {
    const target = service.deployments['production'];
    if (!target) continue;
    let uuid: string;
    if ('application' in target) uuid = target.application;
    else uuid = (await sandbox.liveColour(name)) === 'green' ? target.green : target.blue;
    const app = sandbox.fakes.coolify.applications.get(uuid);
    const tag = app?.runningTag ?? null;
    out[name] = tag ? (sandbox.fakes.registry.digestOf(tag) ?? null) : null;
  }
  return out;
}

/** Every fake saw only requests and answers its API description allows. */
export function expectNoContractViolations(sandbox: Sandbox): void {
  for (const [name, fake] of Object.entries(sandbox.fakes)) {
    const violations = (fake as { violations?: unknown[] }).violations ?? [];
    expect(violations, `${name} contract violations`).toEqual([]);
  }
}
