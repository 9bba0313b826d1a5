/**
 * Connection strings of the servers the integration tests use. The global setup starts a cluster
 * and sets these variables; set them yourself to test against servers you keep running.
 */
export interface TestEnv {
  /** PostgreSQL primary (max_prepared_transactions > 0). */
  primaryUrl: string;
  /** A streaming replica of the primary that applies at once. */
  replicaUrl: string;
  /** A streaming replica of the primary with `recovery_min_apply_delay` = `replicaDelayMs`. */
  laggingReplicaUrl: string;
  replicaDelayMs: number;
  /** A second, independent PostgreSQL primary. */
  primary2Url: string;
  /**
   * A streaming replica of the second primary, lagging like `laggingReplicaUrl`; undefined for a
   * cluster started before the harness made one (`CAUSEWAY_TEST_PRIMARY2_REPLICA_URL`).
   */
  primary2ReplicaUrl: string | undefined;
  redisUrl: string;
}

export const ENV_VARS = {
  primaryUrl: 'CAUSEWAY_TEST_PRIMARY_URL',
  replicaUrl: 'CAUSEWAY_TEST_REPLICA_URL',
  laggingReplicaUrl: 'CAUSEWAY_TEST_LAGGING_REPLICA_URL',
  replicaDelayMs: 'CAUSEWAY_TEST_REPLICA_DELAY_MS',
  primary2Url: 'CAUSEWAY_TEST_PRIMARY2_URL',
  redisUrl: 'CAUSEWAY_TEST_REDIS_URL',
} as const;

/** Set by the harness, but not required of a cluster started by an older one (see `hasTestEnv`). */
export const PRIMARY2_REPLICA_URL_VAR = 'CAUSEWAY_TEST_PRIMARY2_REPLICA_URL';

/**
 * True when every variable is set, so no cluster needs starting; false when none is. Some but
 * not all is an error naming the missing ones, rather than silently replacing the servers the
 * user meant to test against.
 */
export function hasTestEnv(): boolean {
  const missing = Object.values(ENV_VARS).filter((name) => !process.env[name]);
  if (missing.length === 0) return true;
  if (missing.length === Object.values(ENV_VARS).length) return false;
  throw new Error(
    `Set all of the CAUSEWAY_TEST_* variables or none (none starts a cluster); missing: ${missing.join(', ')}`,
  );
}

export function testEnv(): TestEnv {
  const read = (name: string): string => {
    const value = process.env[name];
    if (!value) {
      throw new Error(
        `${name} is not set: run integration tests through vitest (its global setup starts the ` +
          'servers) or start them with `npm run cluster` and load the variables it prints.',
      );
    }
    return value;
  };
  return {
    primaryUrl: read(ENV_VARS.primaryUrl),
    replicaUrl: read(ENV_VARS.replicaUrl),
    laggingReplicaUrl: read(ENV_VARS.laggingReplicaUrl),
    replicaDelayMs: Number(read(ENV_VARS.replicaDelayMs)),
    primary2Url: read(ENV_VARS.primary2Url),
    primary2ReplicaUrl: process.env[PRIMARY2_REPLICA_URL_VAR] || undefined,
    redisUrl: read(ENV_VARS.redisUrl),
  };
}
