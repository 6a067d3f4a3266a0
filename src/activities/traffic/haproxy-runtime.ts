/**
 * Traffic provider over HAProxy's runtime API: a service is an HAProxy backend, a logical target is one
 * server of it, and its share of user requests is its weight (percent as weight, 0..100; HAProxy accepts
 * 0..256). Changes are runtime-only: they survive until HAProxy reloads, unless HAProxy is configured with
 * a `server-state-file` that is saved before reloads.
 */
import { FailureType, failure } from '../../errors';
import { cancellationSignal } from '../activity-support';
import {
  HaproxyRuntimeClient,
  type HaproxyAdminState,
  type HaproxyServerState,
  type HaproxySocketAddress,
} from './haproxy-runtime-client';
import {
  GetTrafficStateInput,
  MirrorTrafficInput,
  RestoreTrafficStateInput,
  SetCanaryWeightsInput,
  StopMirroringInput,
  SwitchTrafficInput,
  activeColour,
  expectSnapshot,
  parseTrafficInput,
  unsupportedByProvider,
  weightsToPercent,
  type TrafficChange,
  type TrafficProvider,
  type TrafficState,
} from './traffic-provider';

/** How a service maps onto HAProxy. */
export interface HaproxyServiceMapping {
  /** The backend (default: the service name). */
  backend?: string;
  /** Logical target -> server name in the backend (default: a target is the server of the same name). */
  targets?: Record<string, string>;
}

export interface HaproxyTrafficOptions {
  /** The runtime API socket; it must be declared with `level admin`. */
  socket: HaproxySocketAddress;
  /** Bound on one runtime API command; 5 s by default. */
  timeoutMs?: number;
  services?: Record<string, HaproxyServiceMapping>;
}

/** The weight a target that takes all traffic gets. */
const FULL_WEIGHT = 100;

interface DesiredServer {
  weight: number;
  /** Undefined: leave the administrative state as it is. */
  admin?: HaproxyAdminState;
}

/**
 * Builds the HAProxy traffic activities.
 *
 * - `switchTraffic` sets the colour's server to weight 100 and state `ready`, and every other server of
 *   the backend to weight 0 (their state untouched, so health checks keep running and the old colour is
 *   ready for an instant switch-back).
 * - `setCanaryWeights` sets `stable` to 100 - p and `canary` to p, every other server to 0.
 * - `mirrorTraffic` fails with `PolicyViolation`: HAProxy has no request mirroring of its own (it takes
 *   SPOE plus an external mirroring agent, which this project does not run), and imitating it with weights
 *   would let the shadow serve real users, which S4 forbids. Use the Traefik provider for shadow releases.
 *   `stopMirroring` is a successful no-op, since no mirroring can be on.
 *
 * Idempotent by check-then-act: each operation reads `show servers state <backend>`, sends only the `set
 * server` commands whose value differs (none at all when the state already holds, `changed: false`), and
 * returns the state it read as `previous`; `restoreTrafficState` puts back every server's weight and
 * state from it. Commands that add traffic to a server go before commands that take it away, so there is
 * no moment without a serving server. A target whose health check reports it down is refused before any
 * change (`UpstreamUnavailable`, retryable: it may be starting).
 *
 * Fails with `InvalidInput` (malformed input), `NotFound` (unknown backend or server), `Unauthorized`
 * (socket not `level admin`, or not accessible), `UpstreamUnavailable` (socket unreachable, timeout),
 * `UpstreamRejected` (HAProxy refused a command), `ContractViolation` (unreadable state table).
 */
export function createHaproxyTrafficActivities(options: HaproxyTrafficOptions): TrafficProvider {
  const client = new HaproxyRuntimeClient({ socket: options.socket, timeoutMs: options.timeoutMs });

  const mapping = (service: string) => {
    const configured = options.services?.[service];
    const backend = configured?.backend ?? service;
    const targets = configured?.targets ?? {};
    const serverOf = (target: string) => targets[target] ?? target;
    const targetOf = (server: string) => Object.entries(targets).find(([, s]) => s === server)?.[0] ?? server;
    return { backend, serverOf, targetOf };
  };

  const readServers = async (service: string) => {
    const { backend, targetOf } = mapping(service);
    const servers = await client.showServersState(backend, cancellationSignal());
    const state: TrafficState = toState(service, backend, servers, targetOf);
    return { backend, servers, state };
  };

  const toState = (
    service: string,
    backend: string,
    servers: HaproxyServerState[],
    targetOf: (server: string) => string,
  ): TrafficState => {
    const weights = weightsToPercent(
      servers.map((s) => ({ target: targetOf(s.server), weight: s.admin === 'ready' ? s.weight : 0 })),
    );
    return {
      service,
      weights,
      active: activeColour(weights),
      mirrors: [],
      snapshot: {
        provider: 'haproxy',
        backend,
        servers: servers.map((s) => ({ server: s.server, weight: s.weight, admin: s.admin })),
      },
    };
  };

  const serverNamed = (servers: HaproxyServerState[], backend: string, server: string, target: string) => {
    const found = servers.find((s) => s.server === server);
    if (!found) {
      throw failure(
        FailureType.NotFound,
        `HAProxy backend ${backend} has no server ${server} (target ${target}); servers: ${servers.map((s) => s.server).join(', ') || 'none'}`,
        { details: { system: 'HAProxy', backend, server, target } },
      );
    }
    return found;
  };

  /**
   * Brings the servers to the desired state computed from the current one (weight first, then state;
   * servers gaining traffic first).
   */
  const apply = async (
    service: string,
    desiredFrom: (servers: HaproxyServerState[]) => Map<string, DesiredServer>,
    refuseDownTargets: boolean,
  ): Promise<TrafficChange> => {
    const signal = cancellationSignal();
    const { targetOf } = mapping(service);
    const { backend, servers, state: previous } = await readServers(service);
    const effective = (weight: number, admin: HaproxyAdminState) => (admin === 'ready' ? weight : 0);
    const plan: { server: HaproxyServerState; commands: string[]; gains: boolean }[] = [];
    for (const [name, want] of desiredFrom(servers)) {
      const server = serverNamed(servers, backend, name, targetOf(name));
      const admin = want.admin ?? server.admin;
      const commands: string[] = [];
      if (server.weight !== want.weight) commands.push(`set server ${backend}/${name} weight ${want.weight}`);
      if (server.admin !== admin) commands.push(`set server ${backend}/${name} state ${admin}`);
      if (commands.length === 0) continue;
      const gains = effective(want.weight, admin) > effective(server.weight, server.admin);
      plan.push({ server, commands, gains });
    }
    if (refuseDownTargets) {
      const down = plan.find((p) => p.gains && p.server.operational === 0 && p.server.admin !== 'maint');
      if (down) {
        throw failure(
          FailureType.UpstreamUnavailable,
          `HAProxy reports server ${backend}/${down.server.server} down (health check); refusing to send users to it. Will retry`,
          { details: { system: 'HAProxy', backend, server: down.server.server } },
        );
      }
    }
    plan.sort((a, b) => Number(b.gains) - Number(a.gains));
    for (const step of plan) for (const command of step.commands) await client.execute(command, signal);
    if (plan.length === 0) return { service, changed: false, previous, current: previous };
    const { state: current } = await readServers(service);
    return { service, changed: true, previous, current };
  };

  /** The given servers as given, every other server of the backend at weight 0 (state untouched). */
  const onlyThese =
    (given: Map<string, DesiredServer>) =>
    (servers: HaproxyServerState[]): Map<string, DesiredServer> => {
      const desired = new Map<string, DesiredServer>();
      for (const s of servers) if (!given.has(s.server)) desired.set(s.server, { weight: 0 });
      for (const [name, want] of given) desired.set(name, want);
      return desired;
    };

  return {
    async switchTraffic(raw) {
      const input = parseTrafficInput(SwitchTrafficInput, raw, 'switchTraffic');
      const server = mapping(input.service).serverOf(input.to);
      const desired = onlyThese(new Map([[server, { weight: FULL_WEIGHT, admin: 'ready' as const }]]));
      return apply(input.service, desired, true);
    },

    async setCanaryWeights(raw) {
      const input = parseTrafficInput(SetCanaryWeightsInput, raw, 'setCanaryWeights');
      const { serverOf } = mapping(input.service);
      const share = (weight: number): DesiredServer => (weight > 0 ? { weight, admin: 'ready' } : { weight });
      const desired = onlyThese(
        new Map([
          [serverOf(input.stable), share(100 - input.canaryPercent)],
          [serverOf(input.canary), share(input.canaryPercent)],
        ]),
      );
      return apply(input.service, desired, true);
    },

    mirrorTraffic(raw) {
      parseTrafficInput(MirrorTrafficInput, raw, 'mirrorTraffic');
      return Promise.reject(
        unsupportedByProvider(
          'HAProxy',
          'mirrorTraffic',
          'HAProxy cannot mirror requests without SPOE and an external mirroring agent; use the Traefik provider for shadow (S4) releases',
        ),
      );
    },

    async stopMirroring(raw) {
      const input = parseTrafficInput(StopMirroringInput, raw, 'stopMirroring');
      const { state } = await readServers(input.service);
      return { service: input.service, changed: false, previous: state, current: state };
    },

    async getTrafficState(raw) {
      const input = parseTrafficInput(GetTrafficStateInput, raw, 'getTrafficState');
      return (await readServers(input.service)).state;
    },

    async restoreTrafficState(raw) {
      const input = parseTrafficInput(RestoreTrafficStateInput, raw, 'restoreTrafficState');
      const snapshot = expectSnapshot(input, 'haproxy');
      const { backend } = mapping(input.service);
      if (snapshot.backend !== backend) {
        throw failure(
          FailureType.InvalidInput,
          `restoreTrafficState: the snapshot is of backend ${snapshot.backend}, but service ${input.service} maps to ${backend}`,
          { details: { service: input.service, backend, snapshotBackend: snapshot.backend } },
        );
      }
      const desired = new Map<string, DesiredServer>(
        snapshot.servers.map((s) => [s.server, { weight: s.weight, admin: s.admin }]),
      );
      return apply(input.service, () => desired, false);
    },
  };
}
