/**
 * The first half of every strategy that uses two colours (blue-green, canary, shadow): find the live
 * colour of each service, deploy the release to the idle colour, and smoke-check it there. Users see
 * nothing of it yet: the idle colour receives no user traffic.
 */
import type { DeployInput, ServiceRollout } from '../schemas/deployment';
import {
  applicationOf,
  deployAndWait,
  healthUrl,
  liveColour,
  otherColour,
  smokeCheck,
  type StepLog,
} from './deploy-support';

/** Deploys to the idle colour of every service and smoke-checks it; returns one rollout per service. */
export async function deployIdleColours(input: DeployInput, steps: StepLog): Promise<ServiceRollout[]> {
  const rollouts: ServiceRollout[] = [];
  for (const service of input.services) {
    if (!service.production) continue;
    const live = await liveColour(service.name);
    const idle = otherColour(live);
    const application = applicationOf(service.production.target, idle);
    const deployed = await steps.run(
      `deploy ${service.name} (${idle})`,
      () => deployAndWait(application, input.imageTag, idle),
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
