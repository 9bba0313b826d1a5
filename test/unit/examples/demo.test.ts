import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// `npm run demo` is the README's quick start: it must keep working and keep telling the truth.
describe('the demo', () => {
  it('shows a stale plain read, a fresh Causeway read from the leader, then a replica read', () => {
    const root = join(import.meta.dirname, '..', '..', '..');
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(root, 'examples', 'demo', 'server.ts'), '--selftest'],
      { cwd: root, encoding: 'utf8', timeout: 30_000 },
    );
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/from replica-1: stale/);
    expect(run.stdout).toMatch(/with Causeway -> "[^"]+" from leader/);
    expect(run.stdout).toMatch(/later -> "[^"]+" from replica-1/);
  });
});
