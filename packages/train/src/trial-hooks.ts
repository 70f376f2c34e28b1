/**
 * Test hooks, injected by tests (runTrain's and runTrialTask's second argument, createTrainCli's argument, the
 * hooked test bin), never set by a flag or an option: trial ids that fail as a crash would, and a pause after each
 * epoch (so a test can kill a train mid-sweep).
 */
export interface TrialHooks {
  failTrials?: ReadonlySet<string>;
  epochDelayMs?: number;
}

/** Whether the hooks make trial `id` fail. */
export function injectsFailure(hooks: TrialHooks, id: string): boolean {
  return hooks.failTrials?.has(id) ?? false;
}

/** The hooks' pause after an epoch; undefined without one. */
export function epochPause(hooks: TrialHooks): Promise<void> | undefined {
  return hooks.epochDelayMs ? new Promise((r) => setTimeout(r, hooks.epochDelayMs)) : undefined;
}
