import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HistoryRecorder } from '../../../src/testing/index.js';
import { codeOf } from '../../support/errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'causeway-history-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A recorder on a fake clock that advances 1 ms per reading. */
function recorder(): HistoryRecorder {
  let now = 0;
  return new HistoryRecorder({ clock: () => now++ });
}

const write = (r: HistoryRecorder, session: string, key: string, id: string, version: number) => {
  const startedAt = r.now();
  return r.write({
    session,
    key,
    id,
    version,
    node: 'leader',
    startedAt,
    endedAt: r.now(),
    acknowledged: true,
  });
};

const read = (r: HistoryRecorder, session: string, observed: Record<string, number>) => {
  const startedAt = r.now();
  return r.read({ session, observed, node: 'replica', startedAt, endedAt: r.now() });
};

describe('HistoryRecorder', () => {
  it('records operations in completion order and checks them', async () => {
    const r = recorder();
    // Two sessions in flight at once: each is recorded when it completes.
    const aliceStart = r.now();
    const bobStart = r.now();
    r.read({
      session: 'bob',
      observed: { x: 0 },
      node: 'replica',
      startedAt: bobStart,
      endedAt: r.now(),
    });
    const aliceWrite = r.write({
      session: 'alice',
      key: 'x',
      id: 'w1',
      version: 1,
      node: 'leader',
      startedAt: aliceStart,
      endedAt: r.now(),
      acknowledged: true,
    });
    read(r, 'alice', { x: 1 });
    expect(r.size).toBe(3);
    expect(r.operations().map((op) => op.kind)).toEqual(['read', 'write', 'read']);
    expect(r.operations()[1]).toBe(aliceWrite);
    expect(aliceWrite.kind).toBe('write');
    expect(r.check().ok).toBe(true);

    read(r, 'alice', { x: 0 });
    const result = r.check({ guarantees: ['read-your-writes'] });
    expect(result.violations).toHaveLength(1);
    expect(result.violations[0]!.operations[0]).toBe(aliceWrite);
  });

  it('keeps its own frozen copies: later changes to the caller’s objects change nothing', () => {
    const r = recorder();
    const observed = { x: 1 };
    const dependsOn = ['w0'];
    write(r, 'alice', 'x', 'w0', 1);
    const w = r.write({
      session: 'bob',
      key: 'y',
      id: 'w1',
      version: 1,
      dependsOn,
      node: 'leader',
      startedAt: r.now(),
      endedAt: r.now(),
      acknowledged: true,
    });
    const stored = r.read({
      session: 'carol',
      observed,
      node: 'n',
      startedAt: r.now(),
      endedAt: r.now(),
    });
    observed.x = 0;
    dependsOn.push('nope');
    expect(stored.observed).toEqual({ x: 1 });
    expect(w.dependsOn).toEqual(['w0']);
    expect(Object.isFrozen(stored) && Object.isFrozen(stored.observed)).toBe(true);
    expect(r.check().ok).toBe(true);
  });

  it('rejects a bad operation when it is recorded, and keeps the history as it was', () => {
    const r = recorder();
    write(r, 'alice', 'x', 'w1', 1);
    expect(codeOf(() => write(r, 'bob', 'y', 'w1', 1))).toBe('INVALID_INPUT');
    expect(codeOf(() => write(r, 'bob', 'y', 'w2', Number.NaN))).toBe('INVALID_INPUT');
    expect(codeOf(() => read(r, 'bob', { x: -1 }))).toBe('INVALID_INPUT');
    expect(codeOf(() => r.read(null as never))).toBe('INVALID_INPUT');
    // A kind smuggled in from JavaScript does not turn a read into a write.
    const smuggled = { kind: 'write', observed: { x: 1 }, session: 'carol', node: 'n' };
    expect(r.read({ ...smuggled, startedAt: r.now(), endedAt: r.now() }).kind).toBe('read');
    expect(r.size).toBe(2);
  });

  it('rejects an operation that overlaps its own session’s previous one', () => {
    const r = recorder();
    const startedAt = r.now();
    write(r, 'alice', 'x', 'w1', 1); // ends after `startedAt`
    const overlapping = () =>
      r.read({ session: 'alice', observed: { x: 1 }, node: 'n', startedAt, endedAt: r.now() });
    expect(codeOf(overlapping)).toBe('INVALID_INPUT');
    // Another session may overlap freely.
    r.read({ session: 'bob', observed: { x: 0 }, node: 'n', startedAt, endedAt: r.now() });
    expect(r.size).toBe(2);
  });

  it('saves to a file and loads back an equal history', async () => {
    const r = recorder();
    write(r, 'alice', 'x', 'w1', 1);
    read(r, 'bob', { x: 1, 'with "quotes"': 0 });
    r.write({
      session: 'bob',
      key: 'y',
      id: 'w2',
      version: 0,
      dependsOn: ['w1'],
      node: 'leader',
      startedAt: r.now(),
      endedAt: r.now(),
      acknowledged: false,
    });
    const path = join(dir, 'history.json');
    await r.save(path);
    const loaded = await HistoryRecorder.load(path);
    expect(loaded.operations()).toEqual(r.operations());
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(r.toJSON());
    expect(HistoryRecorder.fromJSON(r.operations()).operations()).toEqual(r.operations());

    const empty = join(dir, 'empty.json');
    await new HistoryRecorder().save(empty);
    expect((await HistoryRecorder.load(empty)).size).toBe(0);
  });

  it('refuses files and values that are not a recorded history', async () => {
    const path = join(dir, 'junk.json');
    await writeFile(path, '{"operations": [');
    expect(await codeOf(HistoryRecorder.load(path))).toBe('INVALID_INPUT');
    for (const junk of [null, 5, 'x', {}, { format: 'other', operations: [] }, [{ kind: 'x' }]]) {
      expect(codeOf(() => HistoryRecorder.fromJSON(junk))).toBe('INVALID_INPUT');
    }
  });

  it('reads performance.now by default and rejects junk options with CONFIG', () => {
    const r = new HistoryRecorder();
    const before = performance.now();
    const now = r.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(performance.now());
    for (const options of [null, 5, { clock: 5 }]) {
      expect(codeOf(() => new HistoryRecorder(options as never))).toBe('CONFIG');
    }
  });
});
