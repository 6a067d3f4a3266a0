/** Values the stand-in workflows report, shared with the tests (which must not load workflow code). */

/** The digest every stand-in release is bound to. */
export const STAND_IN_DIGEST = `sha256:${'ab'.repeat(32)}`;
/** The digest production ran before every stand-in release; a stand-in rollback restores it. */
export const STAND_IN_PREVIOUS_DIGEST = `sha256:${'cd'.repeat(32)}`;
