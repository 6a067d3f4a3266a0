/**
 * The two halves every strategy that uses two colours (blue-green, canary, shadow) shares: find the live
 * colour of each service, deploy the release to the idle colour and smoke-check it there (users see
 * nothing of it yet: the idle colour receives no user traffic); and, at the end, switch every user request
 * to it, with the switch back pushed on the saga.
 */
import type { DeployInput, ServiceRollout } from '../schemas/deployment';
import {
  type Saga,
  applicationOf,
  quick,
  deployAndWait,
  healthUrl,
  liveColour,
  otherColour,
  smokeCheck,
  type StepLog,
} from './deploy-support';

/**
 * Deploys to the idle colour of every service and smoke-checks it; returns one rollout per service. A
 * deployment interrupted half-way is undone through `saga` (see `deployAndWait`).
 */
export async function deployIdleColours(
  input: DeployInput,
  steps: StepLog,
  saga: Saga,
): Promise<ServiceRollout[]> {
  const rollouts: ServiceRollout[] = [];
  for (const service of input.services) {
    if (!service.production) continue;
    const live = await liveColour(service.name);
    const idle = otherColour(live);
    const application = applicationOf(service.production.target, idle);
    const deployed = await steps.run(
      `deploy ${service.name} (${idle})`,
      () => deployAndWait(application, input.imageTag, idle, saga),
      (d) => `${d.applicationUuid}: ${d.previousImageTag ?? 'nothing'} -> ${input.imageTag}`,
    );
    rollouts.push({
      service: service.name,
      liveBefore: live,
      liveAfter: live,
      previousTraffic: null,
      inPlace: [],
      idle: [deployed],
    });
  }
  await steps.run(`smoke ${input.environment} idle colour`, async () =>
    smokeCheck(
      'the idle colour',
      await Promise.all(
        input.services.flatMap((s) =>
          s.production
            ? [
                (async () => {
                  const r = rollouts.find((x) => x.service === s.name)!;
                  const app = r.idle[0]!.applicationUuid;
                  return {
                    name: `${s.name} ${otherColour(r.liveBefore!)}`,
                    url: await healthUrl(app, s.healthCheckPath),
                  };
                })(),
              ]
            : [],
        ),
      ),
    ),
  );
  return rollouts;
}

/**
 * Switches each service to its idle colour (now live), recording the traffic state found, and pushes the
 * switch back on `saga`. `before` runs first for each service (shadow stops mirroring there).
 */
export async function switchToIdleColours(
  rollouts: ServiceRollout[],
  steps: StepLog,
  saga: Saga,
  before?: (rollout: ServiceRollout) => Promise<unknown>,
): Promise<void> {
  for (const rollout of rollouts) {
    if (before) await before(rollout);
    const to = rollout.idle[0]!.colour!;
    const change = await steps.run(`switch ${rollout.service} to ${to}`, () =>
      quick.switchTraffic({ service: rollout.service, to }),
    );
    rollout.previousTraffic = change.previous;
    rollout.liveAfter = to;
    saga.push(`switch ${rollout.service} back to ${rollout.liveBefore}`, async () => {
      await quick.restoreTrafficState({ service: rollout.service, state: change.previous });
    });
  }
}
