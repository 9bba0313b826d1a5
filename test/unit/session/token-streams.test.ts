import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CausewayError, ErrorCode } from '../../../src/errors.js';
import {
  MAX_SESSION_STREAMS,
  SessionContext,
  type SessionState,
} from '../../../src/session/context.js';
import type { Position } from '../../../src/session/position.js';
import {
  MULTI_STREAM_TOKEN_VERSION,
  SessionTokens,
  TOKEN_VERSION,
} from '../../../src/session/token.js';

const SECRET = 'a'.repeat(32);
const tokens = new SessionTokens({ secret: SECRET });
const ID = 'AbCdEfGhIjKlMnOp';
// PostgreSQL system identifiers are 19 digits.
const streamName = (i: number) => String(7301234567890123456n + BigInt(i));
const at = (stream: string, lsn: bigint, epoch = 3): Position => ({ stream, epoch, lsn });

/** A session with both floors on each of `count` clusters. */
function spread(count: number): SessionState {
  const session = new SessionContext({ id: ID });
  for (let i = 0; i < count; i++) {
    session.noteWrite(at(streamName(i), 0x1_6b37_4d48n));
    session.noteRead(at(streamName(i), 0x1_6b37_5000n));
  }
  return session.state;
}

function reasonOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(CausewayError);
    expect((error as CausewayError).code).toBe(ErrorCode.INVALID_SESSION_TOKEN);
    return (error as CausewayError).details['reason'] as string;
  }
}

describe('session tokens over several clusters', () => {
  it('verifies a token issued before per-stream floors (version 1, made by the previous release)', () => {
    const before =
      'AQNrF0iAEEFiQ2RFZkdoSWpLbE1uT3ATNzMwMTIzNDU2Nzg5MDEyMzQ1NgAAAAMAAAABazdNSAAAAAFrN1AA2e-RiNS6ZRIMg78yQ8EoKuChYU-ZxESofCtGEIBKszg';
    const now = Date.UTC(2026, 11, 7);
    expect(tokens.verify(before, { now }).state).toEqual(spread(1));
    // A single-cluster session still gets exactly that token, readable by the previous release.
    expect(tokens.issue(spread(1), now)).toBe(before);
  });

  it('is version 2 past one cluster; size by number of clusters', () => {
    const sizes = [1, 2, 8].map((count) => {
      const token = tokens.issue(spread(count));
      expect(tokens.verify(token).state).toEqual(spread(count));
      expect(Buffer.from(token, 'base64url')[0]).toBe(
        count === 1 ? TOKEN_VERSION : MULTI_STREAM_TOKEN_VERSION,
      );
      return token.length;
    });
    // The README's "Scaling out" states these sizes.
    expect(sizes).toEqual([127, 184, 512]);
    expect(sizes[1]).toBeLessThan(256);
  });

  it('round-trips any state of up to the limit of streams (property)', () => {
    const event = fc.tuple(
      fc.boolean(),
      fc.integer({ min: 0, max: 11 }),
      fc.integer({ min: 0, max: 4 }),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }), (events) => {
        const session = new SessionContext({ id: ID });
        for (const [write, stream, epoch, lsn] of events) {
          const position = at(`s${stream}`, lsn, epoch);
          write ? session.noteWrite(position) : session.noteRead(position);
        }
        expect(tokens.verify(tokens.issue(session.state)).state).toEqual(session.state);
      }),
    );
  });

  it('a signed token naming more streams than the limit, or one stream twice, is refused', () => {
    const token = tokens.issue(spread(2));
    const bytes = Buffer.from(token, 'base64url');
    const payload = bytes.subarray(0, bytes.length - 32);
    const countAt = 7 + ID.length;
    const entry = payload.subarray(countAt + 1, countAt + 1 + (payload.length - countAt - 1) / 2);
    const resign = (body: Buffer) => {
      const tag = createHmac('sha256', SECRET).update(body).digest();
      return Buffer.concat([body, tag]).toString('base64url');
    };
    const withEntries = (count: number, entries: Buffer[]) =>
      resign(Buffer.concat([payload.subarray(0, countAt), Buffer.from([count]), ...entries]));
    // Re-signing the unchanged payload gives the same token: the forgery is well-formed.
    expect(withEntries(2, [payload.subarray(countAt + 1)])).toBe(token);
    expect(reasonOf(() => tokens.verify(withEntries(2, [entry, entry])))).toBe('malformed');
    const many = Array.from({ length: MAX_SESSION_STREAMS + 1 }, (_, i) => {
      const copy = Buffer.from(entry);
      copy.write(streamName(100 + i), 2, 'utf8');
      return copy;
    });
    expect(reasonOf(() => tokens.verify(withEntries(many.length, many)))).toBe('malformed');
    expect(
      tokens.verify(withEntries(MAX_SESSION_STREAMS, many.slice(1))).state.otherStreams,
    ).toHaveLength(MAX_SESSION_STREAMS - 1);
  });

  it('stream checks: one stream refuses tokens naming none of it, a list refuses unknown ones', () => {
    const token = tokens.issue(spread(2));
    expect(tokens.verify(token, { stream: streamName(1) }).state).toEqual(spread(2));
    expect(reasonOf(() => tokens.verify(token, { stream: 'elsewhere' }))).toBe('other-cluster');
    expect(tokens.verify(token, { stream: [streamName(0), streamName(1)] }).state).toEqual(
      spread(2),
    );
    expect(reasonOf(() => tokens.verify(token, { stream: [streamName(0)] }))).toBe('other-cluster');
  });
});
