/**
 * The provider-neutral contract of the traffic activities (S1 blue-green, S3 canary, S4 shadow). A
 * workflow speaks only in *logical targets* (`blue`, `green`, `shadow`, ...); each provider's configuration
 * maps them to its own names (HAProxy servers, Traefik services, DNS addresses).
 *
 * Every mutating operation sets a desired state: it reads the current state, does nothing when it already
 * holds (`changed: false`), and otherwise applies only the difference. It returns the state it found
 * (`previous`), whose `snapshot` `restoreTrafficState` puts back exactly; that is the compensation a saga
 * pushes after each forward step.
 *
 * No Node builtins here: the schemas and types may be imported by workflows (`import type`).
 */
import { z } from 'zod';
import { FailureType, failure } from '../../errors';

/** The two production colours of blue-green (S1). */
export const Colour = z.enum(['blue', 'green']);
export type Colour = z.infer<typeof Colour>;

const name = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]*$/, 'must be a name of letters, digits, ".", "_", "@" or "-"');

/** `switchTraffic` input: send every user request of `service` to colour `to`. */
export const SwitchTrafficInput = z.strictObject({ service: name, to: Colour });
export type SwitchTrafficInput = z.infer<typeof SwitchTrafficInput>;

/** `setCanaryWeights` input: `canaryPercent` of user requests to `canary`, the rest to `stable` (S3). */
export const SetCanaryWeightsInput = z
  .strictObject({
    service: name,
    /** Logical target that keeps serving most users. */
    stable: name,
    /** Logical target under evaluation. */
    canary: name,
    canaryPercent: z.number().int().min(0).max(100),
  })
  .refine((v) => v.stable !== v.canary, { message: 'stable and canary must be different targets' });
export type SetCanaryWeightsInput = z.infer<typeof SetCanaryWeightsInput>;

/**
 * `mirrorTraffic` input: copies of `percent` % of the requests go to the shadow target `to`; its answers
 * are discarded, it never serves a user (S4). The mirror list becomes exactly this one mirror.
 */
export const MirrorTrafficInput = z.strictObject({
  service: name,
  to: name,
  percent: z.number().int().min(1).max(100),
});
export type MirrorTrafficInput = z.infer<typeof MirrorTrafficInput>;

/** `stopMirroring` input: no copies of `service` requests go anywhere afterwards. */
export const StopMirroringInput = z.strictObject({ service: name });
export type StopMirroringInput = z.infer<typeof StopMirroringInput>;

/** `getTrafficState` input. */
export const GetTrafficStateInput = z.strictObject({ service: name });
export type GetTrafficStateInput = z.infer<typeof GetTrafficStateInput>;

const HaproxySnapshot = z.strictObject({
  provider: z.literal('haproxy'),
  backend: z.string(),
  servers: z.array(
    z.strictObject({
      server: z.string(),
      weight: z.number().int().min(0).max(256),
      admin: z.enum(['ready', 'drain', 'maint']),
    }),
  ),
});

const TraefikSnapshot = z.strictObject({
  provider: z.literal('traefik'),
  /**
   * The raw file-provider definitions of the Traefik services this adapter may touch for the service
   * (`http.services.<name>`), `null` for absent ones.
   */
  services: z.record(z.string(), z.unknown().nullable()),
});

const DnsSnapshot = z.strictObject({
  provider: z.literal('dns'),
  recordId: z.string(),
  recordName: z.string(),
  content: z.string(),
});

/** Exactly what a provider had, for `restoreTrafficState`. Opaque to workflows. */
export const TrafficSnapshot = z.discriminatedUnion('provider', [
  HaproxySnapshot,
  TraefikSnapshot,
  DnsSnapshot,
]);
export type TrafficSnapshot = z.infer<typeof TrafficSnapshot>;

/**
 * Where the user traffic of a service goes, as a provider sees it. A target is named by its logical name
 * when the configuration knows it, otherwise by the provider's own name.
 */
export const TrafficState = z.strictObject({
  service: z.string(),
  /** Share of user requests per target, percent (all zero when nothing serves). */
  weights: z.array(z.strictObject({ target: z.string(), percent: z.number().min(0).max(100) })),
  /** The colour that receives every user request; null while traffic is split or goes elsewhere. */
  active: Colour.nullable(),
  /** Targets receiving copies of the requests (S4); their answers never reach users. */
  mirrors: z.array(z.strictObject({ target: z.string(), percent: z.number().min(0).max(100) })),
  snapshot: TrafficSnapshot,
});
export type TrafficState = z.infer<typeof TrafficState>;

/** `restoreTrafficState` input: the compensation of any mutating operation, given its `previous`. */
export const RestoreTrafficStateInput = z.strictObject({ service: name, state: TrafficState });
export type RestoreTrafficStateInput = z.infer<typeof RestoreTrafficStateInput>;

/** The result of every mutating operation. */
export const TrafficChange = z.strictObject({
  service: z.string(),
  /** False when the desired state already held and nothing was written. */
  changed: z.boolean(),
  /** The state found before; hand it to `restoreTrafficState` to undo. */
  previous: TrafficState,
  current: TrafficState,
});
export type TrafficChange = z.infer<typeof TrafficChange>;

/**
 * What every traffic provider offers, as activities (one object in, one object out). Properties, not
 * methods: the worker registers each function on its own, detached from the object.
 */
export interface TrafficProvider {
  /** S1: every user request to colour `to`; the other colour stays configured (weight 0) for switch-back. */
  switchTraffic: (input: SwitchTrafficInput) => Promise<TrafficChange>;
  /** S3: split user requests between `stable` and `canary`; every other target gets none. */
  setCanaryWeights: (input: SetCanaryWeightsInput) => Promise<TrafficChange>;
  /** S4: mirror copies of requests to a shadow target that never serves users. */
  mirrorTraffic: (input: MirrorTrafficInput) => Promise<TrafficChange>;
  /** S4: stop all mirroring of the service (a no-op when none is configured). */
  stopMirroring: (input: StopMirroringInput) => Promise<TrafficChange>;
  getTrafficState: (input: GetTrafficStateInput) => Promise<TrafficState>;
  /** Compensation: puts back exactly the state a previous operation returned as `previous`. */
  restoreTrafficState: (input: RestoreTrafficStateInput) => Promise<TrafficChange>;
}

/** Validates an activity input; a malformed one is a non-retryable `InvalidInput` naming the issues. */
export function parseTrafficInput<S extends z.ZodType>(
  schema: S,
  input: unknown,
  activity: string,
): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues
    .slice(0, 10)
    .map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`);
  throw failure(FailureType.InvalidInput, `${activity}: invalid input: ${issues.join('; ')}`, {
    details: { activity, issues },
  });
}

/** The honest answer of a provider asked for something it cannot do. */
export function unsupportedByProvider(provider: string, operation: string, why: string) {
  return failure(
    FailureType.PolicyViolation,
    `${operation} is not supported by the ${provider} traffic provider: ${why}`,
    {
      details: { provider, operation },
    },
  );
}

/** Turns weights into percentages of their sum (two decimals); all zero when the sum is zero. */
export function weightsToPercent(entries: { target: string; weight: number }[]): TrafficState['weights'] {
  const total = entries.reduce((sum, e) => sum + e.weight, 0);
  return entries.map((e) => ({
    target: e.target,
    percent: total === 0 ? 0 : Math.round((e.weight / total) * 10_000) / 100,
  }));
}

/** The colour that takes 100 % of the user traffic, if any. */
export function activeColour(weights: TrafficState['weights']): Colour | null {
  const full = weights.find((w) => w.percent === 100);
  if (!full) return null;
  const colour = Colour.safeParse(full.target);
  return colour.success ? colour.data : null;
}

/** Refuses a restore whose snapshot came from another provider or another service. */
export function expectSnapshot<P extends TrafficSnapshot['provider']>(
  input: RestoreTrafficStateInput,
  provider: P,
): Extract<TrafficSnapshot, { provider: P }> {
  const { state } = input;
  if (state.snapshot.provider !== provider || state.service !== input.service) {
    throw failure(
      FailureType.InvalidInput,
      `restoreTrafficState: the state is a ${state.snapshot.provider} snapshot of service ${state.service}, ` +
        `not a ${provider} snapshot of ${input.service}`,
      { details: { provider, service: input.service } },
    );
  }
  return state.snapshot as Extract<TrafficSnapshot, { provider: P }>;
}
