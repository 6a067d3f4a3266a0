/**
 * S4 shadow, as a child workflow of the release: deploy to the idle colour, mirror a share of live requests
 * to it (its answers are discarded: it never serves a user), and compare it with the live colour on error
 * rate and p95 latency every metric interval for `duration`. Mirroring stops whatever happens. When the
 * shadow compared well, traffic switches to it as in blue-green: the shadow run was the pre-release
 * validation of the very deployment that goes live.
 */
import { FailureType, failure } from '../errors';
import type { DeployInput, DeployResult } from '../schemas/deployment';
import type { BakeSample } from '../schemas/release';
import { deployIdleColours, switchToIdleColours } from './colour-deploy';
import { Saga, StepLog, hold, quick, read, sampleService, undoAndFail } from './deploy-support';

export async function shadowDeployWorkflow(input: DeployInput): Promise<DeployResult> {
  if (input.strategy.type !== 'shadow')
    throw failure(FailureType.InvalidInput, 'shadowDeployWorkflow needs a shadow strategy');
  const strategy = input.strategy;
  const { monitoring } = input;
  const steps = new StepLog();
  const saga = new Saga();
  const samples: BakeSample[] = [];
  try {
    const rollouts = await deployIdleColours(input, steps, saga);
    for (const rollout of rollouts) {
      const shadow = rollout.idle[0]!.colour!;
      const change = await steps.run(
        `mirror ${strategy.mirrorPercent}% of ${rollout.service} to ${shadow}`,
        () => quick.mirrorTraffic({ service: rollout.service, to: shadow, percent: strategy.mirrorPercent }),
      );
      saga.push(`stop mirroring ${rollout.service}`, async () => {
        await quick.restoreTrafficState({ service: rollout.service, state: change.previous });
      });
    }
    const rounds = Math.max(1, Math.ceil(strategy.duration / monitoring.sampleIntervalMs));
    const windowSeconds = Math.max(1, Math.round(monitoring.sampleIntervalMs / 1000));
    await steps.run(`compare shadow with live for ${rounds} samples`, async () => {
      for (let minute = 1; minute <= rounds; minute++) {
        await hold(monitoring.sampleIntervalMs);
        for (const rollout of rollouts) {
          const shadow = rollout.idle[0]!.colour!;
          const sample = await sampleService({
            service: rollout.service,
            environment: input.environment,
            minute,
            monitoring,
            labels: { color: shadow },
          });
          samples.push(sample);
          if (sample.decision === 'breach') {
            throw failure(
              FailureType.OperationFailed,
              `shadow of ${rollout.service}: ${sample.note ?? 'breach'}`,
            );
          }
          const time = new Date().toISOString();
          const [shadowLatency, liveLatency] = await Promise.all(
            [shadow, rollout.liveBefore!].map((color) =>
              read.sampleLatency({
                quantile: 0.95,
                service: rollout.service,
                labels: { color },
                windowSeconds,
                time,
              }),
            ),
          );
          if (shadowLatency?.seconds != null && liveLatency?.seconds != null && liveLatency.seconds > 0) {
            const regression = shadowLatency.seconds / liveLatency.seconds - 1;
            if (regression > strategy.maxLatencyRegression) {
              throw failure(
                FailureType.OperationFailed,
                `shadow of ${rollout.service}: p95 ${shadowLatency.seconds.toFixed(3)}s is ${(regression * 100).toFixed(0)}% slower than live ${liveLatency.seconds.toFixed(3)}s (limit ${(strategy.maxLatencyRegression * 100).toFixed(0)}%)`,
              );
            }
          }
        }
      }
      return `${rounds} samples, shadow within limits`;
    });
    await switchToIdleColours(rollouts, steps, saga, (rollout) =>
      steps.run(`stop mirroring ${rollout.service}`, () => quick.stopMirroring({ service: rollout.service })),
    );
    return { strategy: 'shadow', services: rollouts, steps: steps.steps, samples };
  } catch (err) {
    return undoAndFail(err, steps, saga, 'shadow deployment');
  }
}
