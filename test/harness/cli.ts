/**
 * `npm run cluster [-- --write-env PATH]`: starts the test cluster, prints the variables that
 * point the tests at it, and keeps it running until Ctrl-C (or SIGTERM).
 */
import { parseArgs } from 'node:util';
import { clusterEnv, startCluster, writeEnvFile } from './cluster.js';

const { values } = parseArgs({ options: { 'write-env': { type: 'string' } } });
const started = Date.now();
const cluster = await startCluster();
const env = clusterEnv(cluster);
for (const [key, value] of Object.entries(env)) console.log(`export ${key}=${value}`);
if (values['write-env']) writeEnvFile(values['write-env'], env);
console.error(`# cluster ready in ${Date.now() - started} ms; Ctrl-C stops it`);

const stop = async () => {
  await cluster.stop();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
setInterval(() => {}, 1 << 30);
