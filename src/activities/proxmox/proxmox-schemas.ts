/**
 * Inputs, results and API answers of the Proxmox VE activities (B3: a template per released version, kept
 * 7 days). API answer schemas follow `proxmox-ve/apidata.json`; they accept the extra fields real servers
 * send and Proxmox's 0/1 booleans.
 */
import { z } from 'zod';

/** A guest id, as Proxmox allows (`pve-vmid`). */
export const Vmid = z.number().int().min(100).max(999_999_999);

/** `pve-configid`: a snapshot name such as `release-v1_2_0` (no dots). */
export const SnapshotName = z
  .string()
  .max(40)
  .regex(
    /^[a-zA-Z][a-zA-Z0-9_-]+$/,
    'must start with a letter and hold only letters, digits, - and _ (no dots)',
  );

/** `dns-name`: a VM name such as `aceh-commerce-v1-2-0`. */
export const VmName = z
  .string()
  .max(253)
  .regex(
    /^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)\.)*[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/,
    'must be a DNS name (letters, digits, - and dots)',
  );

/** A task id: `UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:`. */
export const Upid = z
  .string()
  .regex(
    /^UPID:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?:[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8,9}:[0-9A-Fa-f]{8}:[^:\s]+:[^:\s]*:[^:\s]+:$/,
    'must be a Proxmox task id (UPID:node:...:)',
  );
export type Upid = z.infer<typeof Upid>;

export const SnapshotVmInput = z.strictObject({
  vmid: Vmid,
  snapname: SnapshotName,
  description: z.string().max(8192).optional(),
});
export type SnapshotVmInput = z.infer<typeof SnapshotVmInput>;

export const ConvertToTemplateInput = z.strictObject({ vmid: Vmid });
export type ConvertToTemplateInput = z.infer<typeof ConvertToTemplateInput>;

export const CloneVmInput = z
  .strictObject({
    vmid: Vmid,
    newid: Vmid,
    name: VmName.optional(),
    /** Full copy of the disks; a template is linked-cloned by default. */
    full: z.boolean().optional(),
  })
  .refine((i) => i.vmid !== i.newid, { message: 'newid must differ from vmid', path: ['newid'] });
export type CloneVmInput = z.infer<typeof CloneVmInput>;

export const DeleteVmInput = z.strictObject({
  vmid: Vmid,
  /** Refuse (PolicyViolation) unless the guest has this name: guards retention against a wrong id. */
  expectName: z.string().optional(),
  /** Refuse (PolicyViolation) unless the guest is a template. */
  expectTemplate: z.boolean().optional(),
  /** Also remove the guest from backup, replication and HA configuration. */
  purge: z.boolean().optional(),
});
export type DeleteVmInput = z.infer<typeof DeleteVmInput>;

/**
 * What a mutating activity did: `upid` is the task to wait for (`waitForTask`), the one it started or one
 * of the same kind already running for the guest; `null` when there is nothing to wait for.
 */
export const ProxmoxTaskRef = z.object({
  vmid: z.number(),
  node: z.string(),
  upid: Upid.nullable(),
  /** True when this call started the task; false when the work was already done or under way. */
  started: z.boolean(),
});
export type ProxmoxTaskRef = z.infer<typeof ProxmoxTaskRef>;

export const WaitForTaskInput = z.strictObject({ upid: Upid });
export type WaitForTaskInput = z.infer<typeof WaitForTaskInput>;

export const WaitForTaskResult = z.object({
  upid: z.string(),
  node: z.string(),
  type: z.string(),
  id: z.string(),
  exitstatus: z.literal('OK'),
  /** Status polls over all attempts. */
  polls: z.number().int(),
});
export type WaitForTaskResult = z.infer<typeof WaitForTaskResult>;

export const WaitForTaskProgress = z.object({
  upid: z.string(),
  polls: z.number().int().nonnegative(),
  status: z.string(),
});
export type WaitForTaskProgress = z.infer<typeof WaitForTaskProgress>;

// ---- API answers (the `data` of the `{"data": ...}` envelope) ----

/** Proxmox sends booleans as 0/1. */
export const PveBoolean = z
  .union([z.boolean(), z.literal(0), z.literal(1)])
  .transform((v) => v === true || v === 1);

export const UpidAnswer = z.object({ data: Upid });

export const ClusterResourcesAnswer = z.object({
  data: z.array(
    z.object({
      id: z.string(),
      type: z.string(),
      vmid: z.number().int().optional(),
      node: z.string().optional(),
      name: z.string().optional(),
      template: PveBoolean.optional(),
      lock: z.string().optional(),
    }),
  ),
});

export const SnapshotListAnswer = z.object({
  data: z.array(z.object({ name: z.string(), description: z.string().optional() })),
});

export const VmConfigAnswer = z.object({
  data: z.object({
    template: PveBoolean.optional(),
    name: z.string().optional(),
    lock: z.string().optional(),
  }),
});

export const TaskListAnswer = z.object({
  data: z.array(
    z.object({ upid: z.string(), type: z.string(), id: z.string(), status: z.string().optional() }),
  ),
});

export const TaskStatusAnswer = z.object({
  data: z.object({
    upid: z.string(),
    node: z.string(),
    type: z.string(),
    id: z.string(),
    status: z.enum(['running', 'stopped']),
    exitstatus: z.string().optional(),
  }),
});

export const TaskLogAnswer = z.object({ data: z.array(z.object({ n: z.number().int(), t: z.string() })) });
