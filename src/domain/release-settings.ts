/**
 * What a release needs to know of the platform configuration, drawn from it once when the release starts
 * and kept in the workflow history: a release runs to its end under the rules it started with, and the
 * history shows which rules those were (U3). A configuration change applies to the next release.
 *
 * Deterministic: a pure function of the parsed configuration.
 */
import type {
  DeploymentStrategy,
  DeploymentTarget,
  FreezeWindow,
  PlatformConfig,
} from '../config/platform-config';
import type { StrategyName } from '../schemas/release';

/** A service as the release deploys it: its applications and URLs per environment. */
export interface ReleaseService {
  name: string;
  healthCheckPath: string;
  /** Staging: one application (rolling), or absent when the service has no staging deployment. */
  staging: { application: string; url: string } | null;
  /** Production: one application, or a blue and a green one. */
  production: { target: DeploymentTarget; url: string } | null;
}

export interface ApprovalSettings {
  /** Whether the production environment needs approval at all (`approval.environments`). */
  required: boolean;
  approvers: string[];
  requiredApprovals: number;
  separationOfDuties: boolean;
  reminderIntervalMs: number;
  /** After this long without a decision, reminders say the release is overdue. There is no expiry. */
  overdueAfterMs: number;
}

export interface MonitoringSettings {
  bakeTimeMs: number;
  sampleIntervalMs: number;
  maxErrorRate: number;
  minRequestsPerSample: number;
  /** LogQL query template of the error-log scan (`${environment}`, `${service}`, `${color}` filled in). */
  errorLogQuery: string;
  maxErrorLines: number;
}

export interface ReleaseSettings {
  organizationTimeZone: string;
  stagingEnvironment: string | null;
  productionEnvironment: string;
  /** The strategy of this release, resolved from the request and the environment's configuration. */
  strategy: DeploymentStrategy;
  /** The strategy rolling staging deploys use (S2). */
  stagingStrategy: DeploymentStrategy | null;
  services: ReleaseService[];
  approval: ApprovalSettings;
  freezeWindows: FreezeWindow[];
  monitoring: MonitoringSettings;
  preDeploymentSnapshot: boolean;
  rpoMs: number;
  deploymentSnapshotGuests: number[];
  changelogPath: string;
  docsSnapshotTemplate: string;
  /**
   * The QA report the gate looks for (`${version}` in `pathTemplate`), or null for the `qaResult` signal
   * alone. Absent in the settings of releases started before it existed.
   */
  qaReport?: { pathTemplate: string; format: 'playwright' | 'postman'; pollEveryMs: number } | null;
  productionBranch: string;
  hotfixBranch: string;
  /** `host/repository` of the release images. */
  imageRepository: string;
  telegramChannel: string;
  cdnPurge: 'everything' | 'hosts';
  /** Whether a traffic provider is configured (blue-green, canary and shadow need one). */
  trafficConfigured: boolean;
}

/** Thrown when the configuration cannot carry the release asked for; the message says what to change. */
export class ReleaseSettingsError extends Error {}

function domainOf(config: PlatformConfig, environment: string, domain: string): string {
  const env = config.environments[environment];
  if (!env) return '';
  return domain === 'main' ? env.domain : (env.domains[domain] ?? env.domain);
}

function pickStrategy(
  config: PlatformConfig,
  environment: string,
  requested: StrategyName | undefined,
): DeploymentStrategy {
  const env = config.environments[environment];
  if (!env) throw new ReleaseSettingsError(`environment ${environment} is not configured`);
  if (!requested || requested === env.strategy.type) return env.strategy;
  const alternative = env.alternativeStrategies.find((s) => s.type === requested);
  if (alternative) return alternative;
  const offered = [env.strategy.type, ...env.alternativeStrategies.map((s) => s.type)].join(', ');
  throw new ReleaseSettingsError(
    `strategy ${requested} is not configured for ${environment} (offered: ${offered}); add it to environments.${environment}.alternativeStrategies`,
  );
}

/**
 * The stream selector of a LogQL query whose placeholders are filled in: from its first `{` to the
 * matching `}` outside quoted label values.
 */
export function logSelectorOf(query: string): string {
  const start = query.indexOf('{');
  if (start < 0) return query.trim();
  let quoted = false;
  for (let i = start + 1; i < query.length; i++) {
    const c = query[i];
    if (c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (c === '}' && !quoted) return query.slice(start, i + 1);
  }
  return query.slice(start).trim();
}

/** Fills `${name}` placeholders of a query template; unknown ones become empty. */
export function fillQueryTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\$\{([a-z]+)\}/g, (_m, name: string) => values[name] ?? '');
}

/**
 * Draws the settings of one release from the configuration. The production environment is the last of
 * `release.promotion`, staging the one before it (if any).
 *
 * @throws ReleaseSettingsError when the configuration cannot carry it: the strategy asked for is not
 * offered, or a strategy that moves traffic has no traffic provider or no blue/green applications.
 */
export function deriveReleaseSettings(
  config: PlatformConfig,
  request: { strategy?: StrategyName | undefined; hotfix: boolean },
): ReleaseSettings {
  const promotion = config.release.promotion;
  const productionEnvironment = promotion[promotion.length - 1] ?? 'production';
  const stagingEnvironment = promotion.length > 1 ? (promotion[promotion.length - 2] ?? null) : null;
  const strategy = pickStrategy(config, productionEnvironment, request.strategy);
  const stagingStrategy = stagingEnvironment ? pickStrategy(config, stagingEnvironment, undefined) : null;

  const services: ReleaseService[] = Object.entries(config.services).map(([name, service]) => {
    const stagingTarget = stagingEnvironment ? service.deployments[stagingEnvironment] : undefined;
    const productionTarget = service.deployments[productionEnvironment];
    return {
      name,
      healthCheckPath: service.healthCheckPath,
      staging:
        stagingTarget && stagingEnvironment
          ? {
              application: 'application' in stagingTarget ? stagingTarget.application : stagingTarget.blue,
              url: domainOf(config, stagingEnvironment, service.domain),
            }
          : null,
      production: productionTarget
        ? { target: productionTarget, url: domainOf(config, productionEnvironment, service.domain) }
        : null,
    };
  });

  if (strategy.type !== 'rolling') {
    if (!config.systems.traffic) {
      throw new ReleaseSettingsError(
        `strategy ${strategy.type} moves traffic between colours and needs systems.traffic (haproxy, traefik or cloudflare-dns)`,
      );
    }
    const single = services.filter((s) => s.production && 'application' in s.production.target);
    if (single.length > 0) {
      throw new ReleaseSettingsError(
        `strategy ${strategy.type} needs blue and green applications in ${productionEnvironment}; ${single.map((s) => s.name).join(', ')} has one`,
      );
    }
  }

  const approval = config.approval;
  const hotfixApprovals = approval.hotfix?.requiredApprovals;
  return {
    organizationTimeZone: config.organization.timezone,
    stagingEnvironment,
    productionEnvironment,
    strategy,
    stagingStrategy,
    services,
    approval: {
      required: approval.environments.includes(productionEnvironment),
      approvers: [...approval.approvers],
      requiredApprovals:
        request.hotfix && hotfixApprovals !== undefined ? hotfixApprovals : approval.requiredApprovals,
      separationOfDuties: approval.separationOfDuties,
      reminderIntervalMs: approval.reminderInterval,
      overdueAfterMs: approval.timeout,
    },
    freezeWindows: config.freezeWindows,
    monitoring: {
      bakeTimeMs: config.monitoring.bakeTime,
      sampleIntervalMs: config.monitoring.sampleInterval,
      maxErrorRate: config.monitoring.maxErrorRate,
      minRequestsPerSample: config.monitoring.minRequestsPerSample,
      errorLogQuery: config.monitoring.errorLogScan.query,
      maxErrorLines: config.monitoring.errorLogScan.maxErrorLines,
    },
    preDeploymentSnapshot: config.database.preDeploymentSnapshot,
    rpoMs: config.recovery.rpo,
    deploymentSnapshotGuests: [...config.backups.deploymentSnapshot.guests],
    changelogPath: config.release.changelog,
    docsSnapshotTemplate: config.release.docsSnapshot,
    qaReport: config.release.qaReport
      ? {
          pathTemplate: config.release.qaReport.path,
          format: config.release.qaReport.format,
          pollEveryMs: config.release.qaReport.pollEvery,
        }
      : null,
    productionBranch: config.systems.git.branches.production,
    hotfixBranch: config.systems.git.branches.hotfix,
    imageRepository: `${new URL(config.systems.registry.url).host}/${config.systems.registry.repository}`,
    telegramChannel: config.systems.telegram.channelName,
    cdnPurge: config.systems.cdn.purge,
    trafficConfigured: config.systems.traffic !== undefined,
  };
}
