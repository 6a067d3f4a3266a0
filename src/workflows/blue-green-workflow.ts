/**
 * S1 blue-green, as a child workflow of the release: deploy to the idle colour, smoke-check it, verify it
 * for `verifyFor`, then switch every user request to it. The old colour keeps running the previous version,
 * ready for an instant switch back (the release's compensation restores the traffic state it returns).
 *
 * On failure or cancellation it undoes its own switches in reverse before it fails; on success it returns
 * what it did, and undoing it is the caller's business.
 */
import type { DeployInput, DeployResult } from '../schemas/deployment';
import { FailureType, failure } from '../errors';
import { deployIdleColours, switchToIdleColours } from './colour-deploy';
import { Saga, StepLog, healthUrl, hold, smokeCheck, undoAndFail } from './deploy-support';

export async function blueGreenDeployWorkflow(input: DeployInput): Promise<DeployResult> {
  if (input.strategy.type !== 'blue-green')
    throw failure(FailureType.InvalidInput, 'blueGreenDeployWorkflow needs a blue-green strategy');
  const strategy = input.strategy;
  const steps = new StepLog();
  const saga = new Saga();
  try {
    const rollouts = await deployIdleColours(input, steps, saga);
    if (strategy.verifyFor > 0) {
      await steps.run(`verify idle colour for ${strategy.verifyFor / 1000}s`, async () => {
        await hold(strategy.verifyFor);
        const urls = await Promise.all(
          rollouts.map(async (r) => {
            const service = input.services.find((s) => s.name === r.service)!;
            return {
              name: r.service,
              url: await healthUrl(r.idle[0]!.applicationUuid, service.healthCheckPath),
            };
          }),
        );
        return smokeCheck('the idle colour after verification', urls);
      });
    }
    await switchToIdleColours(rollouts, steps, saga);
    return { strategy: 'blue-green', services: rollouts, steps: steps.steps, samples: [] };
  } catch (err) {
    return undoAndFail(err, steps, saga, 'blue-green deployment');
  }
}
