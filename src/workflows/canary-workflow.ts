/**
 * S3 canary, as a child workflow of the release: deploy to the idle colour, then send it a growing share
 * of user requests (for example 5, 25, 50, 100 %). Each step is held at least `stepDuration` and at least
 * one metric interval, sampling the canary colour's error rate every interval; a breach ends the canary and
 * puts the traffic back as it was. At 100 % the canary colour becomes the live colour.
 */
import { canaryPlan } from '../domain/canary-plan';
import { FailureType, failure } from '../errors';
import type { DeployInput, DeployResult } from '../schemas/deployment';
import type { BakeSample } from '../schemas/release';
import { deployIdleColours } from './colour-deploy';
import { Saga, StepLog, hold, quick, sampleService, undoAndFail } from './deploy-support';

export async function canaryDeployWorkflow(input: DeployInput): Promise<DeployResult> {
  if (input.strategy.type !== 'canary')
    throw failure(FailureType.InvalidInput, 'canaryDeployWorkflow needs a canary strategy');
  const { monitoring } = input;
  const plan = canaryPlan({
    steps: input.strategy.steps,
    stepDurationMs: input.strategy.stepDuration,
    sampleIntervalMs: monitoring.sampleIntervalMs,
  });
  const steps = new StepLog();
  const saga = new Saga();
  const samples: BakeSample[] = [];
  try {
    const rollouts = await deployIdleColours(input, steps, saga);
    let minute = 0;
    for (const step of plan) {
      for (const rollout of rollouts) {
        const canary = rollout.idle[0]!.colour!;
        const stable = rollout.liveBefore!;
        const change = await steps.run(`${rollout.service}: ${step.percent}% to ${canary}`, () =>
          step.percent === 100
            ? quick.switchTraffic({ service: rollout.service, to: canary })
            : quick.setCanaryWeights({
                service: rollout.service,
                stable,
                canary,
                canaryPercent: step.percent,
              }),
        );
        if (!rollout.previousTraffic) {
          rollout.previousTraffic = change.previous;
          saga.push(`put ${rollout.service} traffic back on ${stable}`, async () => {
            await quick.restoreTrafficState({ service: rollout.service, state: change.previous });
          });
        }
      }
      await steps.run(`hold ${step.percent}% for ${step.samples} samples`, async () => {
        for (let i = 0; i < step.samples; i++) {
          await hold(monitoring.sampleIntervalMs);
          minute++;
          for (const rollout of rollouts) {
            const sample = await sampleService({
              service: rollout.service,
              environment: input.environment,
              minute,
              monitoring,
              labels: { color: rollout.idle[0]!.colour! },
            });
            samples.push(sample);
            if (sample.decision === 'breach') {
              throw failure(
                FailureType.OperationFailed,
                `canary gate at ${step.percent}%: ${rollout.service} ${sample.note ?? 'breach'}`,
              );
            }
          }
        }
        return `${step.samples} samples, no breach`;
      });
    }
    for (const rollout of rollouts) rollout.liveAfter = rollout.idle[0]!.colour;
    return { strategy: 'canary', services: rollouts, steps: steps.steps, samples };
  } catch (err) {
    return undoAndFail(err, steps, saga, 'canary deployment');
  }
}
