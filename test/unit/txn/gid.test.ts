import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isCausewayError } from '../../../src/errors.js';
import {
  assertCoordinatorConfig,
  branchGid,
  coordinatorPrefix,
  MAX_GID_BYTES,
  newTxnGid,
  parseGid,
} from '../../../src/txn/gid.js';

const component = fc.stringMatching(/^[A-Za-z0-9_.-]{1,40}$/);

describe('gids', () => {
  it('parses back what it formats', () => {
    fc.assert(
      fc.property(component, component, (coordinatorId, participant) => {
        const txnGid = newTxnGid(coordinatorId);
        const parsed = parseGid(branchGid(txnGid, participant));
        expect(parsed.coordinatorId).toBe(coordinatorId);
        expect(parsed.participant).toBe(participant);
        expect(parsed.txnGid).toBe(txnGid);
        expect(txnGid.startsWith(coordinatorPrefix(coordinatorId))).toBe(true);
        expect(parseGid(txnGid).participant).toBeUndefined();
      }),
    );
  });

  it('rejects anything with a quote, another scheme or bad parts as INVALID_INPUT', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        const gid = `cw:${a}'${b}:${'0'.repeat(32)}`;
        expect(() => parseGid(gid)).toThrow(
          expect.objectContaining({ code: 'INVALID_INPUT' }) as Error,
        );
      }),
    );
    for (const bad of [
      '',
      'cw',
      'cw:a',
      `xx:a:${'0'.repeat(32)}`,
      'cw:a:not-hex',
      `cw:a:${'0'.repeat(32)}:p:extra`,
      `cw:a:${'0'.repeat(32)}:`,
      `cw:${'a'.repeat(200)}:${'0'.repeat(32)}`,
      `cw:a b:${'0'.repeat(32)}`,
    ]) {
      let caught: unknown;
      try {
        parseGid(bad);
      } catch (error) {
        caught = error;
      }
      expect(isCausewayError(caught, 'INVALID_INPUT')).toBe(true);
    }
  });

  it('refuses coordinator ids and participant names that make gids too long or unsafe', () => {
    const longest = 'c'.repeat(MAX_GID_BYTES - 3 - 1 - 32 - 1 - 1);
    expect(() => assertCoordinatorConfig(longest, ['p'])).not.toThrow();
    expect(Buffer.byteLength(branchGid(newTxnGid(longest), 'p'))).toBe(MAX_GID_BYTES);
    for (const [id, names] of [
      [`${longest}c`, ['p']],
      ['ok', ['p'.repeat(200)]],
      ["it's", ['p']],
      ['a:b', ['p']],
      ['', ['p']],
      ['ok', ['bad"name']],
      ['ok', ['']],
    ] as const) {
      expect(() => assertCoordinatorConfig(id, names)).toThrow(
        expect.objectContaining({ code: 'CONFIG' }) as Error,
      );
    }
  });
});
