import { clusterEnv, startCluster } from './cluster.js';
import { hasTestEnv } from './env.js';

/** Vitest global setup of the integration project: a real cluster for the run, torn down after. */
export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  if (hasTestEnv()) return undefined;
  const cluster = await startCluster();
  Object.assign(process.env, clusterEnv(cluster));
  return () => cluster.stop();
}
