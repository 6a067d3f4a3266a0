/**
 * Traffic provider over Traefik's file provider (the dynamic configuration Coolify's Traefik watches):
 * it edits one YAML file, in place of the service's entry under `http.services`, and leaves every other
 * router, service, middleware and comment of the file as it was.
 *
 * Shape it writes for service `web` (Traefik v2 and v3 file provider):
 *
 * ```yaml
 * http:
 *   services:
 *     web:                    # without mirroring: the weighted split that serves users
 *       weighted:
 *         services:
 *           - { name: web-blue, weight: 0 }
 *           - { name: web-green, weight: 100 }
 *     # with mirroring, `web` becomes the mirroring service and the split moves to `web-weighted`:
 *     # web:
 *     #   mirroring: { service: web-weighted, mirrors: [{ name: web-shadow, percent: 10 }] }
 *     # web-weighted:
 *     #   weighted: { services: [...] }
 * ```
 *
 * Routers keep pointing at `web` throughout. Weight 0 entries receive nothing (Traefik skips non-positive
 * weights) but stay listed, so the old colour is one write away.
 */
import { randomUUID } from 'node:crypto';
import nodeFs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { FailureType, failure } from '../../errors';
import { cancellationSignal } from '../activity-support';
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
  weightsToPercent,
  type TrafficChange,
  type TrafficProvider,
  type TrafficState,
} from './traffic-provider';

/** The file operations the provider uses (`node:fs/promises` by default; injectable to test failures). */
export interface TraefikFileSystem {
  readFile(path: string, encoding: 'utf8'): Promise<string>;
  open(path: string, flags: 'wx', mode: number): Promise<FileHandle>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { force: true }): Promise<void>;
  stat(path: string): Promise<{ mode: number }>;
}

export interface TraefikServiceMapping {
  /** Logical target -> Traefik service name (default `<service>-<target>`, e.g. `web-green`). */
  targets?: Record<string, string>;
}

export interface TraefikFileTrafficOptions {
  /** The dynamic configuration file (YAML) that Traefik's file provider loads. */
  filePath: string;
  services?: Record<string, TraefikServiceMapping>;
  fileSystem?: TraefikFileSystem;
}

const WeightedEntry = z.looseObject({ name: z.string().min(1), weight: z.number().int().min(0).optional() });
const Weighted = z.looseObject({ services: z.array(WeightedEntry).optional() });
const MirrorEntry = z.looseObject({
  name: z.string().min(1),
  percent: z.number().int().min(0).max(100).optional(),
});
const Mirroring = z.looseObject({ service: z.string().min(1), mirrors: z.array(MirrorEntry).optional() });
const ServiceEntry = z.looseObject({ weighted: Weighted.optional(), mirroring: Mirroring.optional() });
type WeightedEntry = z.infer<typeof WeightedEntry>;
type MirrorEntry = z.infer<typeof MirrorEntry>;

/** The weight of a target that takes all traffic (weights are relative; percent keeps them readable). */
const FULL_WEIGHT = 100;

/** What the file says about one service, read. */
interface ServiceView {
  /** Raw definitions of `<service>` and `<service>-weighted` (null when absent). */
  raw: Record<string, unknown>;
  /** The serving split; undefined when the service is absent from the file. */
  weighted?: { extras: Record<string, unknown>; entries: { name: string; weight: number }[] };
  mirroring?: { extras: Record<string, unknown>; mirrors: MirrorEntry[] };
}

// Writers of the same file in this process take turns, so that no read-modify-write loses another's
// change. (Writers in other processes are not coordinated: one worker should own the file.)
const fileQueues = new Map<string, Promise<unknown>>();

function serialised<T>(file: string, work: () => Promise<T>): Promise<T> {
  const previous = fileQueues.get(file) ?? Promise.resolve();
  const next = previous.then(work, work);
  const settled = next.then(
    () => undefined,
    () => undefined,
  );
  fileQueues.set(file, settled);
  void settled.then(() => {
    if (fileQueues.get(file) === settled) fileQueues.delete(file);
  });
  return next;
}

/** JSON with sorted keys: two definitions are the same when only their key order differs. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : v,
  );
}

function fsFailure(err: unknown, action: string, file: string) {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  const details = { system: 'Traefik file provider', file, action, code };
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return failure(
      FailureType.Unauthorized,
      `cannot ${action} ${file} (${code}): check the worker's file permissions`,
      {
        details,
      },
    );
  }
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return failure(FailureType.NotFound, `cannot ${action} ${file} (${code}): does its directory exist?`, {
      details,
    });
  }
  return failure(FailureType.UpstreamUnavailable, `cannot ${action} ${file} (${code}); will retry`, {
    details,
  });
}

/**
 * Builds the Traefik file-provider traffic activities.
 *
 * - `switchTraffic` gives the colour's Traefik service weight 100 and every other entry weight 0.
 * - `setCanaryWeights` gives `stable` 100 - p and `canary` p, every other entry 0.
 * - `mirrorTraffic` turns the service into a `mirroring` service whose main service is the split
 *   (`<service>-weighted`) and whose only mirror is the shadow, at `percent`; the shadow's answers are
 *   discarded by Traefik, it never serves users. It needs a split to exist (`NotFound` otherwise).
 * - `stopMirroring` turns it back into the plain split.
 *
 * Idempotent by check-then-act: each operation reads the file, computes the entries it wants, and writes
 * nothing when they already hold (`changed: false`). It returns as `previous` the raw definitions it
 * found, which `restoreTrafficState` puts back exactly (deleting those that were absent). Writes are
 * atomic: the new file is written to a temporary file in the same directory, flushed, and renamed over the
 * old one, so Traefik (and any reader) sees the old file or the new one, never half of one; the temporary
 * name does not end in `.yml`/`.yaml`, so a directory-watching Traefik ignores it.
 *
 * Fails with `InvalidInput` (malformed input, foreign snapshot), `ContractViolation` (the file is not YAML
 * or the service's entry is not a shape Traefik accepts), `PolicyViolation` (the service is a
 * `loadBalancer`/`failover` this adapter must not replace), `NotFound` (missing directory; mirroring
 * without a split), `Unauthorized` (file permissions), `UpstreamUnavailable` (other I/O errors, retryable).
 */
export function createTraefikFileTrafficActivities(options: TraefikFileTrafficOptions): TrafficProvider {
  const fs: TraefikFileSystem = options.fileSystem ?? nodeFs;
  const file = path.resolve(options.filePath);

  const splitName = (service: string) => `${service}-weighted`;
  const mapping = (service: string) => {
    const targets = options.services?.[service]?.targets ?? {};
    const traefikOf = (target: string) => targets[target] ?? `${service}-${target}`;
    const targetOf = (traefik: string) => {
      const mapped = Object.entries(targets).find(([, t]) => t === traefik)?.[0];
      if (mapped) return mapped;
      const prefix = `${service}-`;
      return traefik.startsWith(prefix) && !(traefik.slice(prefix.length) in targets)
        ? traefik.slice(prefix.length)
        : traefik;
    };
    return { traefikOf, targetOf };
  };

  const load = async (): Promise<YAML.Document> => {
    let text = '';
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsFailure(err, 'read', file);
    }
    const doc = YAML.parseDocument(text);
    const problem = doc.errors[0]?.message;
    const root: unknown = doc.toJS();
    if (
      problem ||
      (root !== null && root !== undefined && (typeof root !== 'object' || Array.isArray(root)))
    ) {
      throw failure(
        FailureType.ContractViolation,
        `${file} is not a Traefik dynamic configuration (YAML mapping)${problem ? `: ${problem.split('\n')[0]}` : ''}; fix the file by hand`,
        { details: { system: 'Traefik file provider', file } },
      );
    }
    return doc;
  };

  const rawService = (doc: YAML.Document, name: string): unknown => {
    const value: unknown = doc.getIn(['http', 'services', name]);
    if (value === undefined || value === null) return null;
    return YAML.isNode(value) ? (value.toJSON() as unknown) : value;
  };

  const view = (doc: YAML.Document, service: string): ServiceView => {
    const split = splitName(service);
    const raw = { [service]: rawService(doc, service), [split]: rawService(doc, split) };
    const entryOf = (name: string) => {
      const value = raw[name];
      if (value === null) return undefined;
      const parsed = ServiceEntry.safeParse(value);
      if (!parsed.success) {
        throw failure(
          FailureType.ContractViolation,
          `http.services.${name} in ${file} is not a valid Traefik service: ${parsed.error.issues[0]?.message ?? ''}; fix the file by hand`,
          { details: { system: 'Traefik file provider', file, service: name } },
        );
      }
      const kinds = Object.keys(parsed.data);
      if (!parsed.data.weighted && !parsed.data.mirroring) {
        throw failure(
          FailureType.PolicyViolation,
          `http.services.${name} in ${file} is a ${kinds.join('/') || 'empty'} service; the traffic provider manages only weighted and mirroring services: give the split its own service name`,
          { details: { system: 'Traefik file provider', file, service: name, kinds } },
        );
      }
      return parsed.data;
    };
    const weightedOf = (w: z.infer<typeof Weighted>) => {
      const { services, ...extras } = w;
      return { extras, entries: (services ?? []).map((e) => ({ name: e.name, weight: e.weight ?? 1 })) };
    };
    const top = entryOf(service);
    if (!top) return { raw };
    if (top.weighted) return { raw, weighted: weightedOf(top.weighted) };
    const { service: main, mirrors, ...mirroringExtras } = top.mirroring ?? { service: '' };
    const mirroring = { extras: mirroringExtras, mirrors: mirrors ?? [] };
    const splitEntry = main === split ? entryOf(split) : undefined;
    if (splitEntry?.weighted) return { raw, weighted: weightedOf(splitEntry.weighted), mirroring };
    // a mirroring service over a service of someone else's: that service serves everything
    return { raw, weighted: { extras: {}, entries: [{ name: main, weight: FULL_WEIGHT }] }, mirroring };
  };

  const toState = (service: string, v: ServiceView): TrafficState => {
    const { targetOf } = mapping(service);
    const weights = weightsToPercent(
      (v.weighted?.entries ?? []).map((e) => ({ target: targetOf(e.name), weight: e.weight })),
    );
    return {
      service,
      weights,
      active: activeColour(weights),
      mirrors: (v.mirroring?.mirrors ?? []).map((m) => ({
        target: targetOf(m.name),
        percent: m.percent ?? 0,
      })),
      snapshot: { provider: 'traefik', services: v.raw },
    };
  };

  /** The raw definitions that express a split and mirrors for `service`. */
  const definitions = (
    service: string,
    v: ServiceView,
    entries: WeightedEntry[],
    mirrors: MirrorEntry[],
  ): Record<string, unknown> => {
    const weighted = { ...(v.weighted?.extras ?? {}), services: entries };
    if (mirrors.length === 0) return { [service]: { weighted }, [splitName(service)]: null };
    return {
      [service]: { mirroring: { ...(v.mirroring?.extras ?? {}), service: splitName(service), mirrors } },
      [splitName(service)]: { weighted },
    };
  };

  const writeAtomically = async (text: string): Promise<void> => {
    const dir = path.dirname(file);
    const temp = path.join(dir, `.${path.basename(file)}.${randomUUID()}.tmp`);
    let mode = 0o644;
    try {
      mode = (await fs.stat(file)).mode & 0o777;
    } catch {
      // a new file gets the default mode
    }
    try {
      const handle = await fs.open(temp, 'wx', mode);
      try {
        await handle.writeFile(text, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      cancellationSignal().throwIfAborted();
      await fs.rename(temp, file);
    } catch (err) {
      await fs.rm(temp, { force: true }).catch(() => undefined);
      if (err instanceof Error && 'code' in err) throw fsFailure(err, 'write', file);
      throw err;
    }
  };

  /** Reads, computes the desired definitions, writes only when they differ. */
  const change = (
    service: string,
    desiredFrom: (v: ServiceView) => Record<string, unknown>,
  ): Promise<TrafficChange> =>
    serialised(file, async () => {
      const doc = await load();
      const before = view(doc, service);
      const previous = toState(service, before);
      const desired = desiredFrom(before);
      let changed = false;
      for (const [name, value] of Object.entries(desired)) {
        if (canonical(value ?? null) === canonical(before.raw[name] ?? null)) continue;
        changed = true;
        if (value === null) doc.deleteIn(['http', 'services', name]);
        else doc.setIn(['http', 'services', name], value);
      }
      if (!changed) return { service, changed: false, previous, current: previous };
      await writeAtomically(doc.toString());
      return { service, changed: true, previous, current: toState(service, view(doc, service)) };
    });

  /** The split with `weights` (Traefik name -> weight); entries not named get 0, new names are appended. */
  const reweighted = (v: ServiceView, weights: Map<string, number>): WeightedEntry[] => {
    const entries = (v.weighted?.entries ?? []).map((e) => ({
      name: e.name,
      weight: weights.get(e.name) ?? 0,
    }));
    for (const [name, weight] of weights)
      if (!entries.some((e) => e.name === name)) entries.push({ name, weight });
    return entries;
  };

  return {
    async switchTraffic(raw) {
      const input = parseTrafficInput(SwitchTrafficInput, raw, 'switchTraffic');
      const { traefikOf } = mapping(input.service);
      return change(input.service, (v) =>
        definitions(
          input.service,
          v,
          reweighted(v, new Map([[traefikOf(input.to), FULL_WEIGHT]])),
          v.mirroring?.mirrors ?? [],
        ),
      );
    },

    async setCanaryWeights(raw) {
      const input = parseTrafficInput(SetCanaryWeightsInput, raw, 'setCanaryWeights');
      const { traefikOf } = mapping(input.service);
      const weights = new Map([
        [traefikOf(input.stable), 100 - input.canaryPercent],
        [traefikOf(input.canary), input.canaryPercent],
      ]);
      return change(input.service, (v) =>
        definitions(input.service, v, reweighted(v, weights), v.mirroring?.mirrors ?? []),
      );
    },

    async mirrorTraffic(raw) {
      const input = parseTrafficInput(MirrorTrafficInput, raw, 'mirrorTraffic');
      const { traefikOf } = mapping(input.service);
      return change(input.service, (v) => {
        if (!v.weighted || v.weighted.entries.length === 0) {
          throw failure(
            FailureType.NotFound,
            `${file} defines no traffic for service ${input.service} to mirror; switch traffic to a colour first`,
            { details: { system: 'Traefik file provider', file, service: input.service } },
          );
        }
        const shadow = traefikOf(input.to);
        if (v.weighted.entries.some((e) => e.name === shadow && e.weight > 0)) {
          throw failure(
            FailureType.PolicyViolation,
            `${shadow} serves users of ${input.service}; a shadow must never serve users (S4): give it weight 0 first`,
            { details: { system: 'Traefik file provider', file, service: input.service, shadow } },
          );
        }
        return definitions(input.service, v, v.weighted.entries, [{ name: shadow, percent: input.percent }]);
      });
    },

    async stopMirroring(raw) {
      const input = parseTrafficInput(StopMirroringInput, raw, 'stopMirroring');
      return change(input.service, (v) =>
        v.mirroring ? definitions(input.service, v, v.weighted?.entries ?? [], []) : v.raw,
      );
    },

    async getTrafficState(raw) {
      const input = parseTrafficInput(GetTrafficStateInput, raw, 'getTrafficState');
      return toState(input.service, view(await load(), input.service));
    },

    async restoreTrafficState(raw) {
      const input = parseTrafficInput(RestoreTrafficStateInput, raw, 'restoreTrafficState');
      const snapshot = expectSnapshot(input, 'traefik');
      const allowed = [input.service, splitName(input.service)];
      const foreign = Object.keys(snapshot.services).filter((name) => !allowed.includes(name));
      if (foreign.length > 0) {
        throw failure(
          FailureType.InvalidInput,
          `restoreTrafficState: the snapshot names Traefik services ${foreign.join(', ')} that do not belong to ${input.service}`,
          { details: { service: input.service, foreign } },
        );
      }
      return change(input.service, () => snapshot.services);
    },
  };
}
