/**
 * Proves the published shape: build, `npm pack`, unpack into a consumer project, then import
 * every subpath export from JavaScript and type-check a TypeScript consumer against the
 * declarations. Peer dependencies resolve from this repository's node_modules (the consumer
 * lives below it), as they would from a user's project.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '..', '..');
const subpaths = [
  'causeway',
  'causeway/express',
  'causeway/pg',
  'causeway/redis',
  'causeway/memory',
];
let consumer: string;

function run(command: string, args: string[], cwd: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

beforeAll(() => {
  mkdirSync(join(repo, '.tmp'), { recursive: true });
  consumer = mkdtempSync(join(repo, '.tmp', 'consumer-'));
  run('npm', ['run', 'build', '--silent'], repo);
  run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', consumer], repo);
  const tarball = readdirSync(consumer).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack produced no tarball');
  const target = join(consumer, 'node_modules', 'causeway');
  mkdirSync(target, { recursive: true });
  run('tar', ['-xzf', join(consumer, tarball), '-C', target, '--strip-components=1'], consumer);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ type: 'module', private: true }));
}, 180_000);

afterAll(() => {
  if (consumer) rmSync(consumer, { recursive: true, force: true });
});

describe('packed package', () => {
  it('ships only built code, declarations and the README', () => {
    const files = run(
      'tar',
      ['-tzf', join(consumer, readdirSync(consumer).find((f) => f.endsWith('.tgz'))!)],
      consumer,
    )
      .trim()
      .split('\n');
    expect(files).toContain('package/dist/src/index.js');
    expect(files).toContain('package/dist/src/index.d.ts');
    expect(
      files.some((f) => f.includes('/test/') || (f.endsWith('.ts') && !f.endsWith('.d.ts'))),
    ).toBe(false);
  });

  it('resolves every subpath export from JavaScript', () => {
    const script = subpaths
      .map((s, i) => `import * as m${i} from '${s}'; out['${s}'] = Object.keys(m${i});`)
      .join('\n');
    writeFileSync(
      join(consumer, 'index.mjs'),
      `const out = {};\n${script}\nconsole.log(JSON.stringify(out));\n`,
    );
    const exported = JSON.parse(run('node', ['index.mjs'], consumer)) as Record<string, string[]>;
    expect(exported['causeway']).toEqual(expect.arrayContaining(['CausewayError', 'ErrorCode']));
    for (const subpath of subpaths) expect(exported[subpath]).toBeDefined();
  });

  it('type-checks a TypeScript consumer against the declarations', () => {
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
        },
        files: ['consumer.ts'],
      }),
    );
    writeFileSync(
      join(consumer, 'consumer.ts'),
      [
        "import { CausewayError, ErrorCode } from 'causeway';",
        ...subpaths.slice(1).map((s, i) => `import * as sub${i} from '${s}';`),
        "const error: CausewayError = new CausewayError(ErrorCode.INVALID_INPUT, 'x');",
        'const code: string = error.code;',
        `export const used = [code, ${subpaths
          .slice(1)
          .map((_, i) => `sub${i}`)
          .join(', ')}];`,
      ].join('\n'),
    );
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    expect(() => run('node', [tsc, '-p', 'tsconfig.json'], consumer)).not.toThrow();
  });
});
