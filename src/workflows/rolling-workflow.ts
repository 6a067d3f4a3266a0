/**
 * S2 rolling update, as a child workflow of the release: services are updated in place, `batchSize` at a
 * time, each batch deployed, smoke-checked, and followed by a pause, so some services always run while
 * others update (and Coolify itself replaces an application's containers without downtime). With blue and
 * green applications, the live colour is updated in place. On failure the services already updated are put
 * back on their previous image tag, in reverse.
 */
import { rollingBatches } from '../domain/canary-plan';
import { FailureType, failure } from '../errors';
import type { DeploymentTarget } from '../config/platform-config';
import type { ReleaseService } from '../domain/release-settings';
import type { Colour, DeployInput, DeployResult, ServiceRollout } from '../schemas/deployment';
import {
  Saga,
  StepLog,
  applicationOf,
  deployAndWait,
  healthUrl,
  hold,
  read,
  redeployPrevious,
  smokeCheck,
  undoAndFail,
} from './deploy-support';

export async function rollingDeployWorkflow(input: DeployInput): Promise<DeployResult> {
  if (input.strategy.type !== 'rolling')
    throw failure(FailureType.InvalidInput, 'rollingDeployWorkflow needs a rolling strategy');
  const strategy = input.strategy;
  const steps = new StepLog();
  const saga = new Saga();
  const staging = input.stage === 'staging';
  const targets = input.services.flatMap(
    (service): { service: ReleaseService; target: DeploymentTarget }[] => {
      if (staging)
        return service.staging ? [{ service, target: { application: service.staging.application } }] : [];
      return service.production ? [{ service, target: service.production.target }] : [];
    },
  );
  try {
    const rollouts: ServiceRollout[] = [];
    const batches = rollingBatches(targets, strategy.batchSize);
    for (const [index, batch] of batches.entries()) {
      for (const item of batch) {
        // With blue and green applications a rolling update replaces the live colour in place.
        const colour: Colour | null =
          'application' in item.target
            ? null
            : ((await read.getTrafficState({ service: item.service.name })).active ?? 'blue');
        const application = applicationOf(item.target, colour);
        const deployed = await steps.run(
          `deploy ${item.service.name} (batch ${index + 1}/${batches.length})`,
          () => deployAndWait(application, input.imageTag, colour, saga),
          (d) => `${d.applicationUuid}: ${d.previousImageTag ?? 'nothing'} -> ${input.imageTag}`,
        );
        saga.push(`redeploy ${item.service.name} on ${deployed.previousImageTag ?? 'nothing'}`, async () => {
          await redeployPrevious(deployed);
          return deployed.previousImageTag
            ? `${deployed.applicationUuid} back on ${deployed.previousImageTag}`
            : 'nothing ran before';
        });
        rollouts.push({
          service: item.service.name,
          liveBefore: colour,
          liveAfter: colour,
          previousTraffic: null,
          inPlace: [deployed],
          idle: [],
        });
      }
      await steps.run(`smoke batch ${index + 1}/${batches.length}`, async () =>
        smokeCheck(
          `batch ${index + 1}`,
          await Promise.all(
            batch.map(async (item, i) => ({
              name: item.service.name,
              url: await healthUrl(
                rollouts[rollouts.length - batch.length + i]!.inPlace[0]!.applicationUuid,
                item.service.healthCheckPath,
              ),
            })),
          ),
        ),
      );
      if (index < batches.length - 1) await hold(strategy.pauseBetweenBatches);
    }
    return { strategy: 'rolling', services: rollouts, steps: steps.steps, samples: [] };
  } catch (err) {
    return undoAndFail(err, steps, saga, 'rolling update');
  }
}
