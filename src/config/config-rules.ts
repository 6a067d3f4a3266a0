/**
 * Rules between fields of a platform configuration that has already passed its schema: references to
 * environments, approvals against approvers, strategies against deployment targets, backup schedules
 * against retention and the recovery point objective, domains against certificates. Each finding is an
 * error (the configuration cannot work as written, or breaks a stated requirement) or a warning (it works
 * but falls short of a requirement, and says what would meet it). Deterministic: no I/O, no clock.
 */
import { cronGaps, parseCron } from './cron';
import { formatDuration } from './duration';
import { instantOf } from './time-zone';
import {
  domainHost,
  isLocalHost,
  type BackupSchedule,
  type DeploymentStrategy,
  type PlatformConfig,
} from './platform-config';

export type IssuePath = (string | number)[];

export interface RuleFinding {
  path: IssuePath;
  message: string;
}

export interface RuleFindings {
  errors: RuleFinding[];
  warnings: RuleFinding[];
}

/** Longest time between two runs of a schedule, in ms; `undefined` for "each release". */
export function scheduleIntervalMs(schedule: BackupSchedule): number | undefined {
  if ('every' in schedule) return schedule.every;
  if ('cron' in schedule) return cronGaps(parseCron(schedule.cron)).maxGapMs;
  return undefined;
}

/** How often a schedule runs, in words, for messages. */
function describeSchedule(schedule: BackupSchedule): string {
  const interval = scheduleIntervalMs(schedule);
  if (interval === undefined) return 'on each release';
  if ('cron' in schedule) {
    const perDay = 86_400_000 / interval;
    if (Number.isInteger(perDay) && perDay > 1)
      return `${perDay} times a day (every ${formatDuration(interval)})`;
  }
  return `every ${formatDuration(interval)}`;
}

/** Strategies that run the new version next to the old one and so need two applications. */
const SIDE_BY_SIDE: ReadonlySet<DeploymentStrategy['type']> = new Set(['blue-green', 'canary', 'shadow']);

/** Checks the rules between fields. */
export function checkPlatformRules(config: PlatformConfig): RuleFindings {
  const errors: RuleFinding[] = [];
  const warnings: RuleFinding[] = [];
  const error = (path: IssuePath, message: string) => errors.push({ path, message });
  const warn = (path: IssuePath, message: string) => warnings.push({ path, message });

  const envNames = Object.keys(config.environments);
  const known = new Set(envNames);
  const unknownEnv = (name: string) =>
    `names environment "${name}", which is not defined; defined: ${envNames.join(', ')}`;

  // Environments and strategies (E1, S1-S4) ---------------------------------------------------------
  const production = envNames.filter((n) => config.environments[n]!.tier === 'production');
  if (production.length === 0) {
    error(['environments'], 'must include an environment with tier: production, where releases end');
  }
  for (const [name, env] of Object.entries(config.environments)) {
    const strategies = [env.strategy, ...env.alternativeStrategies];
    const seen = new Map<string, number>();
    strategies.forEach((s, i) => {
      const path =
        i === 0 ? ['environments', name, 'strategy'] : ['environments', name, 'alternativeStrategies', i - 1];
      if (seen.has(s.type)) {
        error(path, `repeats strategy ${s.type}: each strategy appears once per environment`);
      }
      seen.set(s.type, i);
    });
    if (
      env.strategy.type === 'rolling' &&
      env.tier === 'production' &&
      !env.strategy.acknowledgeNoInstantRollback
    ) {
      error(
        ['environments', name, 'strategy'],
        'production uses rolling updates, which cannot switch back instantly (S1 asks for blue-green); ' +
          'use blue-green, or set acknowledgeNoInstantRollback: true to accept slower rollbacks',
      );
    }
    if (env.strategy.type === 'shadow') {
      warn(
        ['environments', name, 'strategy', 'type'],
        'shadow deployments never serve users (S4), so a release to this environment would never go live; ' +
          'make shadow an alternativeStrategy and pick a serving default',
      );
    }
    for (const [i, s] of strategies.entries()) {
      const path =
        i === 0 ? ['environments', name, 'strategy'] : ['environments', name, 'alternativeStrategies', i - 1];
      if (s.type === 'canary' && s.stepDuration < config.monitoring.sampleInterval) {
        error(
          [...path, 'stepDuration'],
          `is shorter than monitoring.sampleInterval (${formatDuration(config.monitoring.sampleInterval)}): a step would end before its first sample`,
        );
      }
      if (s.type === 'blue-green' && s.verifyFor < config.monitoring.sampleInterval) {
        error(
          [...path, 'verifyFor'],
          `is shorter than monitoring.sampleInterval (${formatDuration(config.monitoring.sampleInterval)}): the idle colour would not be sampled once`,
        );
      }
    }
    const hasService = Object.values(config.services).some((s) => name in s.deployments);
    if (!hasService) warn(['environments', name], 'no service is deployed to this environment');
  }

  // Domains and certificates (E1, H1) ------------------------------------------------------------------
  const hosts = new Map<string, string>();
  for (const [name, env] of Object.entries(config.environments)) {
    const entries: [IssuePath, string][] = [
      [['environments', name, 'domain'], env.domain],
      ...Object.entries(env.domains).map(([d, url]): [IssuePath, string] => [
        ['environments', name, 'domains', d],
        url,
      ]),
    ];
    for (const [path, url] of entries) {
      const host = domainHost(url);
      const first = hosts.get(host);
      if (first !== undefined)
        error(path, `duplicates the domain ${host} of ${first}: each domain serves one place`);
      else hosts.set(host, path.join('.'));
      if (config.tls && url.startsWith('https:')) {
        const hostname = new URL(url).hostname.toLowerCase();
        const covered = config.tls.certificates.some((cert) =>
          cert.startsWith('*.')
            ? hostname.slice(hostname.indexOf('.') + 1) === cert.slice(2)
            : hostname === cert,
        );
        if (!covered) {
          error(
            path,
            `${hostname} is not covered by tls.certificates (${config.tls.certificates.join(', ')}); ` +
              'a wildcard covers exactly one label',
          );
        }
      }
    }
  }
  if (!config.tls) {
    warn(
      ['tls'],
      'is not set, so certificate coverage of the domains (H1) is not checked; list the certificates, e.g. [example.com, "*.example.com"]',
    );
  }

  // Services ------------------------------------------------------------------------------------------------
  const applications = new Map<string, string>();
  for (const [service, s] of Object.entries(config.services)) {
    for (const [envName, target] of Object.entries(s.deployments)) {
      const path = ['services', service, 'deployments', envName];
      const env = config.environments[envName];
      if (!env) {
        error(path, unknownEnv(envName));
        continue;
      }
      if (s.domain !== 'main' && !(s.domain in env.domains)) {
        error(
          ['services', service, 'domain'],
          `is "${s.domain}", but environment ${envName} has no domains.${s.domain}`,
        );
      }
      const sideBySide = [env.strategy, ...env.alternativeStrategies].filter((x) => SIDE_BY_SIDE.has(x.type));
      if (sideBySide.length > 0 && !('blue' in target)) {
        error(
          path,
          `needs two Coolify applications {blue, green}: ${envName} deploys with ${sideBySide.map((x) => x.type).join(', ')}, ` +
            'which run the new version next to the old one',
        );
      }
      if (sideBySide.length === 0 && 'blue' in target) {
        warn(path, `has blue and green applications, but ${envName} only rolls; the green one is never used`);
      }
      const apps = 'blue' in target ? [target.blue, target.green] : [target.application];
      if ('blue' in target && target.blue === target.green) {
        error([...path, 'green'], 'is the same application as blue; blue and green must be two applications');
      }
      for (const app of new Set(apps)) {
        const first = applications.get(app);
        if (first !== undefined) error(path, `uses Coolify application ${app}, already used by ${first}`);
        else applications.set(app, path.join('.'));
      }
    }
  }

  // Release promotion and approval (L1, L2, L6) ---------------------------------------------------------
  const promotion = config.release.promotion;
  promotion.forEach((name, i) => {
    if (!known.has(name)) error(['release', 'promotion', i], unknownEnv(name));
    if (promotion.indexOf(name) !== i) error(['release', 'promotion', i], `repeats ${name}`);
  });
  const last = promotion[promotion.length - 1];
  if (last !== undefined && known.has(last) && config.environments[last]!.tier !== 'production') {
    warn(['release', 'promotion'], `ends at ${last}, which is not a production environment`);
  }

  const approval = config.approval;
  approval.environments.forEach((name, i) => {
    if (!known.has(name)) error(['approval', 'environments', i], unknownEnv(name));
  });
  for (const name of production) {
    if (!approval.environments.includes(name)) {
      warn(
        ['approval', 'environments'],
        `does not include ${name}: releases would reach production without manual approval (L2)`,
      );
    }
  }
  const approvers = approval.approvers;
  approvers.forEach((a, i) => {
    if (approvers.indexOf(a) !== i)
      error(['approval', 'approvers', i], `lists ${a} twice; approvals count distinct people`);
  });
  const distinct = new Set(approvers).size;
  if (approval.requiredApprovals > distinct) {
    error(
      ['approval', 'requiredApprovals'],
      `is ${approval.requiredApprovals}, but only ${distinct} approver${distinct === 1 ? ' is' : 's are'} listed: no release could ever be approved`,
    );
  } else if (approval.separationOfDuties && approval.requiredApprovals === distinct) {
    warn(
      ['approval', 'requiredApprovals'],
      `equals the number of approvers (${distinct}); with separation of duties a release requested by one of them ` +
        'can never collect enough approvals: add an approver or lower requiredApprovals',
    );
  }
  if (!approval.separationOfDuties) {
    warn(['approval', 'separationOfDuties'], 'is off: a requester may approve their own release');
  }
  if (approval.hotfix) {
    if (approval.hotfix.requiredApprovals > distinct) {
      error(
        ['approval', 'hotfix', 'requiredApprovals'],
        `is ${approval.hotfix.requiredApprovals}, but only ${distinct} approvers are listed`,
      );
    } else if (approval.hotfix.requiredApprovals > approval.requiredApprovals) {
      warn(
        ['approval', 'hotfix', 'requiredApprovals'],
        'asks more approvals than a normal release; the hotfix path is meant to be shorter (L3)',
      );
    }
  }

  // Freeze windows ----------------------------------------------------------------------------------------
  config.freezeWindows.forEach((w, i) => {
    const path = ['freezeWindows', i];
    w.environments.forEach((name, j) => {
      if (!known.has(name)) error([...path, 'environments', j], unknownEnv(name));
    });
    if (w.kind === 'once') {
      const zone = w.timezone ?? config.organization.timezone;
      const start = instantOf(w.start, zone);
      const end = instantOf(w.end, zone);
      if (start === undefined) error([...path, 'start'], 'cannot be read as a date-time');
      if (end === undefined) error([...path, 'end'], 'cannot be read as a date-time');
      if (start !== undefined && end !== undefined && end <= start) {
        error([...path, 'end'], 'must be after start');
      }
    } else {
      const { maxGapMs } = cronGaps(parseCron(w.cron));
      if (w.duration >= maxGapMs) {
        error(
          [...path, 'duration'],
          `(${formatDuration(w.duration)}) is at least the time between window starts (${formatDuration(maxGapMs)}): releases would be frozen forever`,
        );
      }
    }
  });

  // Monitoring (M2-M4) ------------------------------------------------------------------------------------
  const m = config.monitoring;
  if (m.sampleInterval > m.bakeTime) {
    error(
      ['monitoring', 'sampleInterval'],
      `(${formatDuration(m.sampleInterval)}) is longer than bakeTime (${formatDuration(m.bakeTime)}): no sample would be taken`,
    );
  } else if (m.bakeTime / m.sampleInterval < 3) {
    warn(
      ['monitoring', 'sampleInterval'],
      `gives fewer than 3 samples in bakeTime ${formatDuration(m.bakeTime)}; one noisy sample decides`,
    );
  }
  if (m.errorLogScan.interval > m.bakeTime) {
    warn(
      ['monitoring', 'errorLogScan', 'interval'],
      `(${formatDuration(m.errorLogScan.interval)}) is longer than bakeTime: the error-log scan may not run before the release is declared healthy`,
    );
  }

  // Backups and recovery (B1-B4, R2) ------------------------------------------------------------------
  const b = config.backups;
  const backupKinds = [
    ['database', b.database.schedule, b.database.retention],
    ['objectStorage', b.objectStorage.schedule, b.objectStorage.retention],
    ['deploymentSnapshot', b.deploymentSnapshot.schedule, b.deploymentSnapshot.retention],
    ['logs', b.logs.schedule, b.logs.retention],
  ] as const;
  for (const [kind, schedule, retention] of backupKinds) {
    const interval = scheduleIntervalMs(schedule);
    if (interval !== undefined && retention < interval) {
      error(
        ['backups', kind, 'retention'],
        `(${formatDuration(retention)}) is shorter than the time between backups (${formatDuration(interval)}): ` +
          'there would be times with no backup at all',
      );
    }
  }
  if (!('trigger' in b.deploymentSnapshot.schedule)) {
    warn(
      ['backups', 'deploymentSnapshot', 'schedule'],
      'B3 takes a template for every version: use {trigger: each-release}',
    );
  }
  if (b.deploymentSnapshot.keepAtLeast < 2) {
    warn(
      ['backups', 'deploymentSnapshot', 'keepAtLeast'],
      'keeps only the newest template; rolling back needs the previous one too',
    );
  }
  for (const [kind, name] of [
    ['database', 'B1'],
    ['objectStorage', 'B2'],
  ] as const) {
    if ('trigger' in b[kind].schedule) {
      warn(
        ['backups', kind, 'schedule'],
        `${name} runs on a timetable; on each release alone, quiet weeks go without backups`,
      );
    }
  }

  const rpo = config.recovery.rpo;
  const dbInterval = scheduleIntervalMs(b.database.schedule) ?? Infinity;
  const db = config.database;
  if (dbInterval > rpo && !db.walArchiving) {
    const every = describeSchedule(b.database.schedule);
    if (!db.preDeploymentSnapshot) {
      error(
        ['recovery', 'rpo'],
        `is ${formatDuration(rpo)}, but database backups run ${every} and cannot meet it on their own: ` +
          'enable database.walArchiving (continuous WAL archiving, point-in-time recovery) or ' +
          'database.preDeploymentSnapshot: true (a dump right before each deployment, which a rollback restores)',
      );
    } else {
      warn(
        ['recovery', 'rpo'],
        `of ${formatDuration(rpo)} holds for rollbacks (a pre-deployment snapshot is restored), but between ` +
          `deployments database backups run ${every}: a failure then loses up to ${dbInterval === Infinity ? 'everything since the last release' : formatDuration(dbInterval)}; ` +
          'enable database.walArchiving (continuous WAL archiving) to meet it always',
      );
      if (m.bakeTime > rpo) {
        warn(
          ['monitoring', 'bakeTime'],
          `(${formatDuration(m.bakeTime)}) is longer than recovery.rpo: a rollback at the end of the bake loses more than the RPO`,
        );
      }
    }
  }

  // Systems (H1) ------------------------------------------------------------------------------------------
  const pg = config.systems.postgres;
  if (pg.sslMode === 'disable' && !isLocalHost(pg.host)) {
    error(
      ['systems', 'postgres', 'sslMode'],
      `is disable for ${pg.host}: database traffic must be encrypted (H1); use verify-full`,
    );
  }
  if (!config.systems.proxmox.verifyTls) {
    warn(
      ['systems', 'proxmox', 'verifyTls'],
      'is off: the Proxmox API token is sent to a server whose certificate is not checked',
    );
  }
  return { errors, warnings };
}
