/**
 * Proves the published shape: build, `npm pack`, `npm install` the tarball into a consumer
 * project (offline: its dependencies are packed from this repository's node_modules, installed
 * by `npm ci` from the lockfile, so no registry metadata is needed; peers are not installed), then import every subpath export from JavaScript, run the `bin` through the link
 * npm made, and type-check a TypeScript consumer against the declarations. Peer dependencies resolve from this
 * repository's node_modules (the consumer lives below it), as they would from a user's project.
 */
import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPORTS } from './exports.js';

const repo = join(import.meta.dirname, '..', '..');
const subpaths = Object.keys(EXPORTS);
let consumer: string;
let tarball: string;

/**
 * Tarballs of the package's runtime dependencies and theirs, packed from the lockfile's install
 * in node_modules: an offline install of the package then resolves every dependency from them
 * (npm's cache holds the lockfile's tarballs, not the registry metadata a range would need).
 */
function packDependencies(destination: string): string[] {
  const seen = new Set<string>();
  const pending = Object.keys(readJson(join(repo, 'package.json')).dependencies ?? {});
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (seen.has(name)) continue;
    seen.add(name);
    pending.push(
      ...Object.keys(readJson(join(repo, 'node_modules', name, 'package.json')).dependencies ?? {}),
    );
  }
  return [...seen].map((name) =>
    join(
      destination,
      run(
        'npm',
        [
          'pack',
          '--ignore-scripts',
          '--silent',
          '--pack-destination',
          destination,
          join(repo, 'node_modules', name),
        ],
        repo,
      ).trim(),
    ),
  );
}

function readJson(path: string): { dependencies?: Record<string, string> } {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function run(command: string, args: string[], cwd: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

beforeAll(() => {
  mkdirSync(join(repo, '.tmp'), { recursive: true });
  consumer = mkdtempSync(join(repo, '.tmp', 'consumer-'));
  run('npm', ['run', 'build', '--silent'], repo);
  run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', consumer], repo);
  const packed = readdirSync(consumer).find((f) => f.endsWith('.tgz'));
  if (!packed) throw new Error('npm pack produced no tarball');
  tarball = join(consumer, packed);
  mkdirSync(join(consumer, 'dependencies'));
  const dependencies = packDependencies(join(consumer, 'dependencies'));
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  run(
    'npm',
    [
      'install',
      '--offline',
      '--no-save',
      '--no-package-lock',
      '--legacy-peer-deps',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      tarball,
      ...dependencies,
    ],
    consumer,
  );
}, 180_000);

afterAll(() => {
  if (consumer) rmSync(consumer, { recursive: true, force: true });
});

describe('packed package', () => {
  it('ships only built code, declarations and the README', () => {
    const files = run('tar', ['-tzf', tarball], consumer).trim().split('\n');
    expect(files).toContain('package/dist/src/index.js');
    expect(files).toContain('package/dist/src/index.d.ts');
    expect(files).toContain('package/dist/src/cli/causeway.js');
    expect(
      files.some((f) => f.includes('/test/') || (f.endsWith('.ts') && !f.endsWith('.d.ts'))),
    ).toBe(false);
  });

  it('loads the core, memory, express and testing entry points without any driver installed', () => {
    // A consumer outside this repository, with only the core's peers: no pg, ioredis, express.
    const bare = mkdtempSync(join(tmpdir(), 'causeway-bare-'));
    try {
      writeFileSync(join(bare, 'package.json'), JSON.stringify({ type: 'module', private: true }));
      mkdirSync(join(bare, 'node_modules', '@opentelemetry'), { recursive: true });
      symlinkSync(
        join(consumer, 'node_modules', 'causeway'),
        join(bare, 'node_modules', 'causeway'),
      );
      for (const peer of ['@opentelemetry/api', 'uuid']) {
        symlinkSync(join(repo, 'node_modules', peer), join(bare, 'node_modules', peer));
      }
      const load = (entry: string) =>
        run(
          'node',
          ['--preserve-symlinks', '-e', `await import('${entry}'); console.log('ok')`],
          bare,
        );
      for (const entry of ['causeway', 'causeway/memory', 'causeway/express', 'causeway/testing']) {
        expect(load(entry).trim()).toBe('ok');
      }
      // The pg adapter does need its driver: proof that this consumer really has none.
      expect(() => load('causeway/pg')).toThrow(/Cannot find package 'pg'/);
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });

  it('exports exactly the listed values from every subpath, from JavaScript', () => {
    const script = subpaths
      .map((s, i) => `import * as m${i} from '${s}'; out['${s}'] = Object.keys(m${i});`)
      .join('\n');
    writeFileSync(
      join(consumer, 'index.mjs'),
      `const out = {};\n${script}\nconsole.log(JSON.stringify(out));\n`,
    );
    const exported = JSON.parse(run('node', ['index.mjs'], consumer)) as Record<string, string[]>;
    for (const subpath of subpaths) {
      expect({ subpath, values: exported[subpath]?.sort() }).toEqual({
        subpath,
        values: [...EXPORTS[subpath]!.values].sort(),
      });
    }
  });

  it('a CommonJS Express app require()s causeway/express (Node >= 20.19, as engines says)', () => {
    const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      engines: { node: string };
    };
    expect(manifest.engines.node).toBe('^20.19.0 || >=22.12.0');
    writeFileSync(
      join(consumer, 'app.cjs'),
      `const http = require('node:http');
const express = require('express');
const { consistency, consistencyOf } = require('causeway/express');
const app = express();
app.use(consistency({ secret: 'a-commonjs-app-secret-of-32-chars!' }));
app.get('/', (req, res) => {
  consistencyOf(req).session.noteWrite({ stream: 's', epoch: 1, lsn: 7n });
  res.json({ ok: true });
});
const server = app.listen(0, '127.0.0.1', () => {
  http.get({ host: '127.0.0.1', port: server.address().port, path: '/' }, (res) => {
    console.log(res.statusCode, typeof res.headers['causeway-session']);
    server.close();
  });
});
`,
    );
    expect(run('node', ['app.cjs'], consumer).trim()).toBe('200 string');
  });

  it('links the `bin` and runs it from the installed package', () => {
    const manifest = JSON.parse(
      readFileSync(join(consumer, 'node_modules', 'causeway', 'package.json'), 'utf8'),
    ) as { bin: Record<string, string> };
    expect(Object.keys(manifest.bin)).toEqual(['causeway']);
    // Through the link npm made, so the shebang and the executable bit are exercised too.
    const help = run(join(consumer, 'node_modules', '.bin', 'causeway'), ['--help'], consumer);
    expect(help).toMatch(/^Usage:\n {2}causeway txn list/);
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

  it('declares exactly the listed types of every subpath', () => {
    // One file re-exporting each subpath; the checker lists what the declarations export.
    const files = subpaths.map((subpath, i) => {
      const file = join(consumer, `surface-${i}.ts`);
      writeFileSync(file, `export * from '${subpath}';\n`);
      return file;
    });
    const program = ts.createProgram(files, {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: ['node'],
      noEmit: true,
    });
    const checker = program.getTypeChecker();
    subpaths.forEach((subpath, i) => {
      const module = checker.getSymbolAtLocation(program.getSourceFile(files[i]!)!)!;
      const typesOnly = checker
        .getExportsOfModule(module)
        .filter((symbol) => {
          const target =
            symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
          // A class re-exported with `export type` is a type to consumers.
          const typeOnly = symbol.declarations?.some(
            (d) => ts.isExportSpecifier(d) && (d.isTypeOnly || d.parent.parent.isTypeOnly),
          );
          return (target.flags & ts.SymbolFlags.Value) === 0 || typeOnly;
        })
        .map((symbol) => symbol.name)
        .sort();
      expect({ subpath, types: typesOnly }).toEqual({
        subpath,
        types: [...EXPORTS[subpath]!.types].sort(),
      });
    });
  });
});
