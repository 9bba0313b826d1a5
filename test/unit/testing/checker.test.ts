import { describe, expect, it } from 'vitest';
import { checkHistory, GUARANTEES } from '../../../src/testing/checker.js';
import type { Guarantee, HistoryOperation } from '../../../src/testing/history.js';
import { codeOf } from '../../support/errors.js';
import { HistoryBuilder } from './history-builder.js';

/** The single violation of `ops`, asserting there is exactly one and of `guarantee`. */
function onlyViolation(ops: HistoryOperation[], guarantee: Guarantee) {
  const result = checkHistory(ops);
  expect(result.ok).toBe(false);
  expect(result.violations.map((v) => v.guarantee)).toEqual([guarantee]);
  expect(result.counts[guarantee]).toBe(1);
  return result.violations[0]!;
}

function expectOk(ops: HistoryOperation[]): void {
  const result = checkHistory(ops);
  expect(result.violations).toEqual([]);
  expect(result.ok).toBe(true);
  expect(result.operations).toBe(ops.length);
}

describe('read-your-writes', () => {
  it('passes when a read sees the session’s acknowledged write', () => {
    const h = new HistoryBuilder();
    h.write('alice', 'x', 'w1', 1);
    h.read('alice', { x: 1 });
    h.read('bob', { x: 0 }); // another session may lag
    expectOk(h.ops);
  });

  it('names the write and the read that missed it', () => {
    const h = new HistoryBuilder();
    const write = h.write('alice', 'x', 'w1', 1);
    h.read('bob', { x: 0 });
    const read = h.read('alice', { x: 0 });
    const violation = onlyViolation(h.ops, 'read-your-writes');
    expect(violation.session).toBe('alice');
    expect(violation.key).toBe('x');
    expect(violation.operations).toEqual([write, read]);
    expect(violation.operations[1]).toBe(read);
    expect(violation.message).toMatch(/^session alice: read #2 saw "x" at version 0.*w1/);
  });

  it('asks nothing of an unacknowledged write or of a key the read did not read', () => {
    const h = new HistoryBuilder();
    h.write('alice', 'x', 'w1', 1, { acknowledged: false });
    h.write('alice', 'y', 'w2', 0, { acknowledged: false });
    h.write('alice', 'z', 'w3', 1);
    h.read('alice', { x: 0, y: 0 });
    expectOk(h.ops);
  });

  it('accepts a read that proves an unacknowledged write visible', () => {
    const h = new HistoryBuilder();
    h.write('alice', 'x', 'w1', 1, { acknowledged: false });
    h.read('bob', { x: 1 });
    h.read('alice', { x: 1 });
    expectOk(h.ops);
  });
});

describe('monotonic reads', () => {
  it('passes when later reads never go back', () => {
    const h = new HistoryBuilder();
    h.write('bob', 'x', 'w1', 1);
    h.write('bob', 'x', 'w2', 2);
    h.read('alice', { x: 1 }, 'replica-1');
    h.read('alice', { x: 1, y: 0 }, 'replica-2');
    h.read('alice', { x: 2 }, 'replica-1');
    expectOk(h.ops);
  });

  it('names the newer read and the older one after it', () => {
    const h = new HistoryBuilder();
    h.write('bob', 'x', 'w1', 1);
    h.write('bob', 'x', 'w2', 2);
    const newer = h.read('alice', { x: 2 }, 'replica-1');
    h.read('alice', { y: 0 }, 'replica-2'); // a key not read before is no regression
    const older = h.read('alice', { x: 1 }, 'replica-2');
    const violation = onlyViolation(h.ops, 'monotonic-reads');
    expect(violation.session).toBe('alice');
    expect(violation.key).toBe('x');
    expect(violation.operations).toEqual([newer, older]);
  });
});

describe('monotonic writes', () => {
  it('passes when a read that sees the later write also sees the earlier one', () => {
    const h = new HistoryBuilder();
    h.write('alice', 'x', 'w1', 1);
    h.write('alice', 'y', 'w2', 1);
    h.read('bob', { x: 1, y: 1 });
    h.read('bob', { y: 1 }); // x not read: nothing to require
    h.read('carol', { x: 0, y: 0 }); // sees neither
    h.read('dave', { x: 1, y: 0 }); // sees only the earlier one
    expectOk(h.ops);
  });

  it('names both writes and the read that saw only the later one', () => {
    const h = new HistoryBuilder();
    const first = h.write('alice', 'x', 'w1', 1);
    const second = h.write('alice', 'y', 'w2', 1);
    const read = h.read('bob', { y: 1, x: 0 });
    const violation = onlyViolation(h.ops, 'monotonic-writes');
    expect(violation.session).toBe('alice');
    expect(violation.key).toBe('x');
    expect(violation.operations).toEqual([first, second, read]);
  });

  it('a read that proves an unacknowledged later write still requires the earlier one', () => {
    const h = new HistoryBuilder();
    const first = h.write('alice', 'x', 'w1', 1);
    const second = h.write('alice', 'y', 'w2', 1, { acknowledged: false });
    const read = h.read('bob', { y: 1, x: 0 });
    expect(onlyViolation(h.ops, 'monotonic-writes').operations).toEqual([first, second, read]);
  });

  it('never requires an unacknowledged earlier write', () => {
    const h = new HistoryBuilder();
    h.write('alice', 'x', 'w1', 1, { acknowledged: false });
    h.write('alice', 'y', 'w2', 1);
    h.read('bob', { y: 1, x: 0 });
    expectOk(h.ops);
  });

  it('finds two writes of one key committed out of session order', () => {
    const h = new HistoryBuilder();
    const first = h.write('alice', 'x', 'w1', 2);
    const second = h.write('alice', 'x', 'w2', 1);
    const violation = onlyViolation(h.ops, 'monotonic-writes');
    expect(violation.session).toBe('alice');
    expect(violation.operations).toEqual([first, second]);
  });
});

describe('writes follow reads', () => {
  it('passes when whoever sees the write also sees what its writer had read', () => {
    const h = new HistoryBuilder();
    h.write('carol', 'post', 'p1', 1);
    h.read('alice', { post: 1 });
    h.write('alice', 'reply', 'r1', 1);
    h.read('bob', { reply: 1, post: 1 });
    h.read('bob', { reply: 1 });
    h.read('dave', { reply: 0, post: 0 });
    expectOk(h.ops);
  });

  it('names the writer’s read, its write and the read that saw the write without the read', () => {
    const h = new HistoryBuilder();
    h.write('carol', 'post', 'p1', 1);
    const earlierRead = h.read('alice', { post: 1 });
    const write = h.write('alice', 'reply', 'r1', 1);
    const read = h.read('bob', { reply: 1, post: 0 });
    const violation = onlyViolation(h.ops, 'writes-follow-reads');
    expect(violation.session).toBe('alice');
    expect(violation.key).toBe('post');
    expect(violation.operations).toEqual([earlierRead, write, read]);
  });

  it('finds a write ordered before a version its session had already read', () => {
    const h = new HistoryBuilder();
    h.write('carol', 'x', 'w2', 2);
    const earlierRead = h.read('alice', { x: 2 });
    const write = h.write('alice', 'x', 'w1', 1);
    const violation = onlyViolation(h.ops, 'writes-follow-reads');
    expect(violation.session).toBe('alice');
    expect(violation.operations).toEqual([earlierRead, write]);
  });
});

describe('consistent prefix', () => {
  it('passes when a reply is seen only with its comment', () => {
    const h = new HistoryBuilder();
    h.write('carol', 'comment', 'c1', 1);
    h.write('dave', 'reply', 'r1', 1, { dependsOn: ['c1'] });
    h.read('bob', { reply: 1, comment: 1 });
    h.read('bob', { reply: 1 }); // the comment was not read
    h.read('erin', { reply: 0, comment: 1 });
    expectOk(h.ops);
  });

  it('names the comment, the reply and the read that saw the reply alone', () => {
    const h = new HistoryBuilder();
    const comment = h.write('carol', 'comment', 'c1', 1);
    const reply = h.write('dave', 'reply', 'r1', 1, { dependsOn: ['c1'] });
    const read = h.read('bob', { reply: 1, comment: 0 });
    const violation = onlyViolation(h.ops, 'consistent-prefix');
    expect(violation.session).toBe('bob');
    expect(violation.key).toBe('comment');
    expect(violation.operations).toEqual([comment, reply, read]);
  });

  it('follows dependencies transitively and names the chain', () => {
    const h = new HistoryBuilder();
    const comment = h.write('carol', 'comment', 'c1', 1);
    const reply = h.write('dave', 'reply', 'r1', 1, { dependsOn: ['c1'] });
    const answer = h.write('erin', 'answer', 'a1', 1, { dependsOn: ['r1'] });
    const read = h.read('bob', { answer: 1, comment: 0 });
    const violation = onlyViolation(h.ops, 'consistent-prefix');
    expect(violation.operations).toEqual([comment, reply, answer, read]);
    expect(violation.message).toMatch(/through dependsOn/);
  });

  it('never requires an unacknowledged dependency', () => {
    const h = new HistoryBuilder();
    h.write('carol', 'comment', 'c1', 1, { acknowledged: false });
    h.write('dave', 'reply', 'r1', 1, { dependsOn: ['c1'] });
    h.read('bob', { reply: 1, comment: 0 });
    expectOk(h.ops);
  });
});

describe('checkHistory', () => {
  it('counts every guarantee and checks only those asked for', () => {
    const h = new HistoryBuilder();
    h.write('alice', 'x', 'w1', 1);
    h.read('alice', { x: 1 });
    h.read('alice', { x: 0 }); // both read-your-writes and monotonic reads
    const all = checkHistory(h.ops);
    expect(all.counts).toEqual({
      'read-your-writes': 1,
      'monotonic-reads': 1,
      'monotonic-writes': 0,
      'writes-follow-reads': 0,
      'consistent-prefix': 0,
    });
    expect(Object.keys(all.counts)).toEqual([...GUARANTEES]);
    const some = checkHistory(h.ops, { guarantees: ['monotonic-reads'] });
    expect(some.violations.map((v) => v.guarantee)).toEqual(['monotonic-reads']);
    expect(some.counts['read-your-writes']).toBe(0);
    expect(checkHistory(h.ops, { guarantees: [] }).ok).toBe(true);
  });

  it('reports one violation per read and key, in history order', () => {
    const h = new HistoryBuilder();
    h.write('alice', 'x', 'w1', 1);
    h.write('alice', 'x', 'w2', 2);
    h.read('alice', { x: 1 });
    h.read('alice', { x: 0 });
    const result = checkHistory(h.ops, { guarantees: ['read-your-writes'] });
    expect(result.violations.map((v) => v.operations.map((op) => h.ops.indexOf(op)))).toEqual([
      [1, 2],
      [1, 3],
    ]);
  });

  it('accepts an empty history and reads of versions no recorded write made', () => {
    expectOk([]);
    const h = new HistoryBuilder();
    h.read('alice', { seeded: 7 });
    h.read('alice', { seeded: 7 });
    expectOk(h.ops);
  });
});

describe('malformed histories', () => {
  const valid = () => {
    const h = new HistoryBuilder();
    h.write('alice', 'x', 'w1', 1);
    h.read('alice', { x: 1 });
    return h.ops as unknown as Record<string, unknown>[];
  };
  const withWrite = (patch: Record<string, unknown>) => {
    const ops = valid();
    ops[0] = { ...ops[0], ...patch };
    return ops;
  };
  const withRead = (patch: Record<string, unknown>) => {
    const ops = valid();
    ops[1] = { ...ops[1], ...patch };
    return ops;
  };
  const check = (ops: unknown) => () => checkHistory(ops as HistoryOperation[]);

  it.each([
    ['not an array', { length: 1 }],
    ['a null operation', [null]],
    ['an unknown kind', withWrite({ kind: 'delete' })],
    ['a missing key', withWrite({ key: undefined })],
    ['a NaN version', withWrite({ version: Number.NaN })],
    ['an infinite version', withWrite({ version: Number.POSITIVE_INFINITY })],
    ['a fractional version', withWrite({ version: 1.5 })],
    ['a negative version', withWrite({ version: -1 })],
    ['an acknowledged write of version 0', withWrite({ version: 0 })],
    ['a string acknowledged flag', withWrite({ acknowledged: 'yes' })],
    ['an empty id', withWrite({ id: '' })],
    ['dependsOn that is not an array', withWrite({ dependsOn: 'w0' })],
    ['a sparse dependsOn', withWrite({ dependsOn: new Array(1) })],
    ['dependsOn on an unknown write', withWrite({ dependsOn: ['nope'] })],
    ['dependsOn on itself', withWrite({ dependsOn: ['w1'] })],
    ['a non-finite time', withWrite({ endedAt: Number.NaN })],
    ['an end before the start', withWrite({ startedAt: 5, endedAt: 4 })],
    ['observed that is an array', withRead({ observed: [1] })],
    ['a negative observed version', withRead({ observed: { x: -1 } })],
    ['a string observed version', withRead({ observed: { x: '1' } })],
    ['a numeric session', withRead({ session: 7 })],
  ])('rejects %s with INVALID_INPUT', (_, ops) => {
    expect(codeOf(check(ops))).toBe('INVALID_INPUT');
  });

  it('rejects a write id used twice, two writes of one version and a dependency cycle', () => {
    const twice = new HistoryBuilder();
    twice.write('alice', 'x', 'w1', 1);
    twice.write('bob', 'y', 'w1', 1);
    expect(codeOf(check(twice.ops))).toBe('INVALID_INPUT');

    const sameVersion = new HistoryBuilder();
    sameVersion.write('alice', 'x', 'w1', 1);
    sameVersion.write('bob', 'x', 'w2', 1, { acknowledged: false });
    expect(codeOf(check(sameVersion.ops))).toBe('INVALID_INPUT');

    const cycle = new HistoryBuilder();
    cycle.write('alice', 'x', 'w1', 1, { dependsOn: ['w3'] });
    cycle.write('alice', 'y', 'w2', 1, { dependsOn: ['w1'] });
    cycle.write('alice', 'z', 'w3', 1, { dependsOn: ['w2'] });
    expect(codeOf(check(cycle.ops))).toBe('INVALID_INPUT');

    // Unknown versions (0) of unacknowledged writes may repeat.
    const unknown = new HistoryBuilder();
    unknown.write('alice', 'x', 'w1', 0, { acknowledged: false });
    unknown.write('bob', 'x', 'w2', 0, { acknowledged: false });
    expectOk(unknown.ops);
  });

  it('rejects junk options with CONFIG', () => {
    const ops = valid() as unknown as HistoryOperation[];
    for (const options of [null, 5, { guarantees: 'read-your-writes' }, { guarantees: ['x'] }]) {
      expect(codeOf(() => checkHistory(ops, options as never))).toBe('CONFIG');
    }
  });
});
