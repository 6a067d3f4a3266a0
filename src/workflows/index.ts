/**
 * Every workflow the worker runs (its `workflowsPath`). Deterministic zone.
 */
export { releaseWorkflow } from './release-workflow';
export { rollbackWorkflow } from './rollback-workflow';
export { blueGreenDeployWorkflow } from './blue-green-workflow';
export { canaryDeployWorkflow } from './canary-workflow';
export { shadowDeployWorkflow } from './shadow-workflow';
export { rollingDeployWorkflow } from './rolling-workflow';
export { environmentLockWorkflow } from './environment-lock-workflow';
