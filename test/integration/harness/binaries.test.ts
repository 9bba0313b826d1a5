import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findPgBinDir, findRedisServer, pickPgBinDir } from '../../harness/cluster.js';

describe('finding server binaries', () => {
  it('finds the PostgreSQL server binaries on this machine', () => {
    const dir = findPgBinDir();
    for (const binary of ['initdb', 'pg_ctl', 'pg_basebackup', 'postgres']) {
      expect(existsSync(join(dir, binary))).toBe(true);
    }
  });

  it('names the package to install when PostgreSQL is missing', () => {
    expect(() => pickPgBinDir(['/nonexistent/bin'])).toThrow(/apt-get install postgresql/);
    expect(() => pickPgBinDir([])).toThrow(/CAUSEWAY_PG_BINDIR/);
  });

  it('skips a directory that lacks one of the binaries', () => {
    const dir = findPgBinDir();
    expect(pickPgBinDir([join(dir, '..'), dir])).toBe(dir);
  });

  it('names the package to install when Redis is missing', () => {
    expect(findRedisServer()).toBe('redis-server');
    expect(() => findRedisServer('redis-server-causeway-missing')).toThrow(
      /apt-get install redis-server/,
    );
  });
});
