/**
 * Proxmox VE: the deployment snapshot of B3 (snapshot the VM of a released version, make a template of
 * it, clone from it when rolling back, delete templates past retention) and the task polling every
 * mutating call needs. Talks to `https://<host>:8006/api2/json` with an API token.
 */
import { FailureType, failure } from '../../errors';
import {
  cancellationSignal,
  heartbeat,
  lastHeartbeat,
  sleepCancellable,
  parseActivityInput,
} from '../activity-support';
import { type Fetch, HttpClient } from '../http/http-client';
import {
  ClusterResourcesAnswer,
  CloneVmInput,
  ConvertToTemplateInput,
  DeleteVmInput,
  type ProxmoxTaskRef,
  SnapshotListAnswer,
  SnapshotVmInput,
  TaskListAnswer,
  TaskLogAnswer,
  TaskStatusAnswer,
  UpidAnswer,
  VmConfigAnswer,
  WaitForTaskInput,
  WaitForTaskProgress,
  type WaitForTaskResult,
} from './proxmox-schemas';

export interface ProxmoxActivitiesOptions {
  /** `https://pve1.acehcommerce.local:8006/api2/json`. */
  baseUrl: string;
  /** `USER@REALM!TOKENID`, e.g. `release@pve!temporal`. */
  tokenId: string;
  /** Resolved by the worker; it only ever goes into the Authorization header. */
  tokenSecret: string;
  /** The node to use when the cluster does not say where a guest lives. */
  node: string;
  fetch?: Fetch;
  /** Interval between task status polls; 2 s by default. */
  pollIntervalMs?: number;
  /** Per-request timeout; 30 s by default. */
  timeoutMs?: number;
}

/** The node a task runs on, from its UPID (`UPID:<node>:...`). */
export function nodeOfUpid(upid: string): string {
  return upid.split(':')[1] ?? '';
}

const enc = encodeURIComponent;

/** Form body the way the Proxmox API takes it: booleans as 0/1, undefined left out. */
function form(params: Record<string, string | number | boolean | undefined>): URLSearchParams {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    body.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  return body;
}

/**
 * Builds the Proxmox VE activities for QEMU guests. Every mutating activity is idempotent by
 * check-then-act and returns the task to wait for (`upid`), which `waitForTask` follows:
 *
 * - `snapshotVm`: skipped when the guest already has a snapshot of that name.
 * - `convertToTemplate`: skipped when the guest already is a template.
 * - `cloneVm`: skipped when `newid` exists with the requested name; `PolicyViolation` when `newid` is
 *   taken by another guest.
 * - `deleteVm`: done when the guest is absent; guards `expectName`/`expectTemplate` refuse with
 *   `PolicyViolation`.
 *
 * When the work is already under way (a retry after the first attempt started the task), the running task
 * of that kind for the guest is returned, so the caller waits for it instead of starting a second one.
 * `waitForTask` polls `/nodes/{node}/tasks/{upid}/status` until `stopped`, heartbeating each poll; it is
 * stateless, so a retry simply resumes polling. It succeeds only when `exitstatus` is exactly `OK`;
 * anything else (`WARNINGS: 1`, an error text) is `OperationFailed` with the exit status and the log tail.
 *
 * HTTP failures follow the shared table (401/403 Unauthorized, 5xx and network UpstreamUnavailable, ...);
 * a guest that does not exist is `NotFound`; invalid input is `InvalidInput`.
 */
export function createProxmoxActivities(options: ProxmoxActivitiesOptions) {
  const http = new HttpClient({
    system: 'Proxmox VE',
    baseUrl: options.baseUrl,
    headers: { authorization: `PVEAPIToken=${options.tokenId}=${options.tokenSecret}` },
    fetch: options.fetch,
    timeoutMs: options.timeoutMs,
  });
  const pollIntervalMs = options.pollIntervalMs ?? 2000;

  interface Guest {
    vmid: number;
    node: string;
    name?: string;
    template: boolean;
  }

  /** The QEMU guest with this id anywhere in the cluster, or undefined. */
  async function findGuest(vmid: number): Promise<Guest | undefined> {
    const { body } = await http.request({
      path: '/cluster/resources',
      query: { type: 'vm' },
      schema: ClusterResourcesAnswer,
      signal: cancellationSignal(),
    });
    const found = body.data.find((r) => r.vmid === vmid && (r.type === 'qemu' || r.type === 'lxc'));
    if (!found) return undefined;
    if (found.type !== 'qemu') {
      throw failure(
        FailureType.UpstreamRejected,
        `Proxmox guest ${vmid} is a container; these activities handle QEMU VMs`,
        {
          details: { vmid, type: found.type },
        },
      );
    }
    return { vmid, node: found.node ?? options.node, name: found.name, template: found.template ?? false };
  }

  async function requireGuest(vmid: number, activity: string): Promise<Guest> {
    const guest = await findGuest(vmid);
    if (!guest) {
      throw failure(FailureType.NotFound, `${activity}: Proxmox VM ${vmid} does not exist in the cluster`, {
        details: { system: 'Proxmox VE', vmid },
      });
    }
    return guest;
  }

  /** A running task of `type` for guest `vmid` on `node`, if any (started by an earlier attempt). */
  async function activeTask(node: string, vmid: number, type: string): Promise<string | undefined> {
    const { body } = await http.request({
      path: `/nodes/${enc(node)}/tasks`,
      query: { vmid, typefilter: type, source: 'active' },
      schema: TaskListAnswer,
      signal: cancellationSignal(),
    });
    return body.data.find(
      (t) => t.type === type && t.id === String(vmid) && (t.status ?? 'running') === 'running',
    )?.upid;
  }

  async function start(
    method: 'POST' | 'DELETE',
    path: string,
    params: Record<string, string | number | boolean | undefined>,
  ): Promise<string> {
    const signal = cancellationSignal();
    if (method === 'DELETE') {
      const query = Object.fromEntries(
        Object.entries(params).map(([k, v]) => [k, typeof v === 'boolean' ? (v ? 1 : 0) : v]),
      );
      return (await http.request({ method, path, query, schema: UpidAnswer, signal })).body.data;
    }
    return (
      await http.request({
        method,
        path,
        body: form(params),
        contentType: 'application/x-www-form-urlencoded',
        schema: UpidAnswer,
        signal,
      })
    ).body.data;
  }

  async function snapshotVm(input: SnapshotVmInput): Promise<ProxmoxTaskRef> {
    const { vmid, snapname, description } = parseActivityInput(SnapshotVmInput, input, 'snapshotVm');
    const guest = await requireGuest(vmid, 'snapshotVm');
    const base = `/nodes/${enc(guest.node)}/qemu/${vmid}/snapshot`;
    const { body } = await http.request({
      path: base,
      schema: SnapshotListAnswer,
      signal: cancellationSignal(),
    });
    if (body.data.some((s) => s.name === snapname)) {
      const upid = await activeTask(guest.node, vmid, 'qmsnapshot');
      return { vmid, node: guest.node, upid: upid ?? null, started: false };
    }
    const upid = await start('POST', base, { snapname, description });
    return { vmid, node: guest.node, upid, started: true };
  }

  async function convertToTemplate(input: ConvertToTemplateInput): Promise<ProxmoxTaskRef> {
    const { vmid } = parseActivityInput(ConvertToTemplateInput, input, 'convertToTemplate');
    const guest = await requireGuest(vmid, 'convertToTemplate');
    const { body } = await http.request({
      path: `/nodes/${enc(guest.node)}/qemu/${vmid}/config`,
      schema: VmConfigAnswer,
      signal: cancellationSignal(),
    });
    if (body.data.template) return { vmid, node: guest.node, upid: null, started: false };
    const running = await activeTask(guest.node, vmid, 'qmtemplate');
    if (running) return { vmid, node: guest.node, upid: running, started: false };
    const upid = await start('POST', `/nodes/${enc(guest.node)}/qemu/${vmid}/template`, {});
    return { vmid, node: guest.node, upid, started: true };
  }

  async function cloneVm(input: CloneVmInput): Promise<ProxmoxTaskRef> {
    const { vmid, newid, name, full } = parseActivityInput(CloneVmInput, input, 'cloneVm');
    const source = await requireGuest(vmid, 'cloneVm');
    const existing = await findGuest(newid);
    if (existing) {
      if (name !== undefined && existing.name !== name) {
        throw failure(
          FailureType.PolicyViolation,
          `cloneVm: VM id ${newid} is already taken by "${existing.name ?? '(unnamed)'}", not "${name}"; choose another newid`,
          { details: { vmid, newid, existingName: existing.name ?? null, name } },
        );
      }
      const upid = await activeTask(source.node, vmid, 'qmclone');
      return { vmid: newid, node: existing.node, upid: upid ?? null, started: false };
    }
    const upid = await start('POST', `/nodes/${enc(source.node)}/qemu/${vmid}/clone`, { newid, name, full });
    return { vmid: newid, node: source.node, upid, started: true };
  }

  async function deleteVm(input: DeleteVmInput): Promise<ProxmoxTaskRef> {
    const { vmid, expectName, expectTemplate, purge } = parseActivityInput(DeleteVmInput, input, 'deleteVm');
    const guest = await findGuest(vmid);
    if (!guest) return { vmid, node: options.node, upid: null, started: false };
    const running = await activeTask(guest.node, vmid, 'qmdestroy');
    if (running) return { vmid, node: guest.node, upid: running, started: false };
    if (expectName !== undefined && guest.name !== expectName) {
      throw failure(
        FailureType.PolicyViolation,
        `deleteVm: VM ${vmid} is named "${guest.name ?? '(unnamed)'}", not "${expectName}"; refusing to delete it`,
        { details: { vmid, name: guest.name ?? null, expectName } },
      );
    }
    if (expectTemplate === true && !guest.template) {
      throw failure(
        FailureType.PolicyViolation,
        `deleteVm: VM ${vmid} is not a template; refusing to delete it`,
        {
          details: { vmid },
        },
      );
    }
    const upid = await start('DELETE', `/nodes/${enc(guest.node)}/qemu/${vmid}`, { purge });
    return { vmid, node: guest.node, upid, started: true };
  }

  async function logTail(node: string, upid: string): Promise<string[]> {
    try {
      const { body } = await http.request({
        path: `/nodes/${enc(node)}/tasks/${enc(upid)}/log`,
        query: { start: 0, limit: 1000 },
        schema: TaskLogAnswer,
        signal: cancellationSignal(),
      });
      return body.data.slice(-20).map((l) => l.t.slice(0, 500));
    } catch {
      return []; // the log only enriches the failure
    }
  }

  async function waitForTask(input: WaitForTaskInput): Promise<WaitForTaskResult> {
    const { upid } = parseActivityInput(WaitForTaskInput, input, 'waitForTask');
    const node = nodeOfUpid(upid);
    const previous = WaitForTaskProgress.safeParse(lastHeartbeat());
    let polls = previous.success && previous.data.upid === upid ? previous.data.polls : 0;
    for (;;) {
      const { body } = await http.request({
        path: `/nodes/${enc(node)}/tasks/${enc(upid)}/status`,
        schema: TaskStatusAnswer,
        signal: cancellationSignal(),
      });
      polls += 1;
      const task = body.data;
      heartbeat({ upid, polls, status: task.status } satisfies WaitForTaskProgress);
      if (task.status === 'stopped') {
        if (task.exitstatus === 'OK') {
          return { upid, node, type: task.type, id: task.id, exitstatus: 'OK', polls };
        }
        const exitstatus = task.exitstatus ?? '(none)';
        const log = await logTail(node, upid);
        throw failure(
          FailureType.OperationFailed,
          `Proxmox task ${task.type} ${task.id} on ${node} ended with "${exitstatus}", not OK; see the task log in the Proxmox UI`,
          { details: { system: 'Proxmox VE', upid, type: task.type, id: task.id, exitstatus, log } },
        );
      }
      await sleepCancellable(pollIntervalMs);
    }
  }

  return { snapshotVm, convertToTemplate, cloneVm, deleteVm, waitForTask };
}

export type ProxmoxActivities = ReturnType<typeof createProxmoxActivities>;
