/**
 * Inputs and results of the deployment child workflows (S1-S4) and the rollback plan a release leaves
 * behind. Deterministic zone: types only.
 */
import type { DeploymentStrategy } from '../config/platform-config';
import type { MonitoringSettings, ReleaseService } from '../domain/release-settings';
import type { SnapshotRecord } from '../activities/postgres/postgres-schemas';
import type { TrafficState } from '../activities/traffic/traffic-provider';
import type { BakeSample, ReleaseStep } from './release';

export type Colour = 'blue' | 'green';

/** Input of every strategy workflow: what to deploy where, and how. */
export interface DeployInput {
  /** Staging deploys each service's staging application; production its blue/green (or single) ones. */
  stage: 'staging' | 'production';
  environment: string;
  version: string;
  /** The image tag Coolify deploys; the release checked that it points at `digest`. */
  imageTag: string;
  digest: string;
  services: ReleaseService[];
  strategy: DeploymentStrategy;
  monitoring: MonitoringSettings;
  /** Who asked, for the audit details of the child. */
  requestedBy: string;
}

/** One application a strategy deployed, and the tag it ran before (what a rollback redeploys). */
export interface DeployedApplication {
  applicationUuid: string;
  colour: Colour | null;
  previousImageTag: string | null;
}

/** What a strategy did to one service, enough to undo it exactly. */
export interface ServiceRollout {
  service: string;
  /** The colour serving users before and after; null for a service without colours (rolling). */
  liveBefore: Colour | null;
  liveAfter: Colour | null;
  /** Traffic as it was before the strategy touched it; restoring it is the switch back. */
  previousTraffic: TrafficState | null;
  /** Applications deployed in place (rolling); redeploying their previous tag undoes them. */
  inPlace: DeployedApplication[];
  /** Applications deployed on the idle colour (blue-green, canary, shadow). */
  idle: DeployedApplication[];
}

/** Result of a strategy workflow. */
export interface DeployResult {
  strategy: DeploymentStrategy['type'];
  services: ServiceRollout[];
  steps: ReleaseStep[];
  /** Gate samples of a canary or shadow. */
  samples: BakeSample[];
}

/** What a release leaves for `rollbackWorkflow`: how to put production back as it was. */
export interface RollbackPlan {
  version: string;
  digest: string;
  /** The digest production ran before; a rollback must end on exactly this one. */
  previousDigest: string | null;
  previousImageTag: string | null;
  snapshot: SnapshotRecord | null;
  migrationsApplied: string[];
  services: ServiceRollout[];
}
