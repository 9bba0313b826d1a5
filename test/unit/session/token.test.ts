import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { CausewayError, ErrorCode } from '../../../src/errors.js';
import {
  currentSession,
  SessionContext,
  type SessionState,
  withSession,
} from '../../../src/session/context.js';
import {
  MAX_TOKEN_LENGTH,
  SessionTokens,
  sessionForJob,
  withJobSession,
} from '../../../src/session/token.js';
import { installTelemetry } from '../../support/otel.js';

const otel = installTelemetry();
afterAll(() => otel.stop());

const SECRET = 'a'.repeat(32);
const OLD_SECRET = 'b'.repeat(32);
const stream = '7301234567890123456'; // a PostgreSQL system identifier is 19 digits
const full: SessionState = {
  id: 'AbCdEfGhIjKlMnOp',
  writeFloor: { stream, epoch: 3, lsn: 0x1_6b37_4d48n },
  readFloor: { stream, epoch: 3, lsn: 0x1_6b37_5000n },
};

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

describe('SessionTokens', () => {
  const tokens = new SessionTokens({ secret: SECRET });

  it('round-trips the state in a compact token', () => {
    const token = tokens.issue(full);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(token.length).toBeLessThan(200);
    expect(tokens.verify(token).state).toEqual(full);
    expect(tokens.verify(tokens.issue({ id: 'x' })).state).toEqual({ id: 'x' });
    const readOnly = { id: 'r', readFloor: full.readFloor! };
    expect(tokens.verify(tokens.issue(readOnly)).state).toEqual(readOnly);
  });

  it('round-trips any state (property)', () => {
    const position = fc.record({
      stream: fc.constant(stream),
      epoch: fc.nat(),
      lsn: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    });
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 16 }),
        fc.option(position, { nil: undefined }),
        fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { nil: undefined }),
        (id, writeFloor, readLsn) => {
          const state: SessionState = {
            id,
            ...(writeFloor ? { writeFloor } : {}),
            ...(readLsn !== undefined && writeFloor
              ? { readFloor: { ...writeFloor, lsn: readLsn } }
              : {}),
          };
          expect(tokens.verify(tokens.issue(state)).state).toEqual(state);
        },
      ),
    );
  });

  it('refuses a token with any character changed (property)', () => {
    const token = tokens.issue(full);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
    fc.assert(
      fc.property(fc.nat(token.length - 1), fc.constantFrom(...alphabet), (index, char) => {
        fc.pre(token[index] !== char);
        const tampered = token.slice(0, index) + char + token.slice(index + 1);
        expect(reasonOf(() => tokens.verify(tampered))).toMatch(
          /^(bad-signature|malformed|unsupported-version)$/,
        );
      }),
    );
  });

  it('refuses a token with any bit of any byte flipped (property)', () => {
    const bytes = Buffer.from(tokens.issue(full), 'base64url');
    fc.assert(
      fc.property(fc.nat(bytes.length - 1), fc.nat(7), (index, bit) => {
        const tampered = Buffer.from(bytes);
        tampered[index]! ^= 1 << bit;
        expect(reasonOf(() => tokens.verify(tampered.toString('base64url')))).toMatch(
          /^(bad-signature|unsupported-version)$/,
        );
      }),
    );
  });

  it('refuses truncated and extended tokens', () => {
    const token = tokens.issue(full);
    for (let length = 0; length < token.length; length += 7) {
      expect(reasonOf(() => tokens.verify(token.slice(0, length)))).toMatch(
        /^(malformed|bad-signature)$/,
      );
    }
    expect(reasonOf(() => tokens.verify(`${token}AA`))).toMatch(/^(malformed|bad-signature)$/);
  });

  it('verifies with a retired secret while rotating, and not after it is dropped', () => {
    const old = new SessionTokens({ secret: OLD_SECRET });
    const rotating = new SessionTokens({ secret: [SECRET, OLD_SECRET] });
    const oldToken = old.issue(full);
    expect(rotating.verify(oldToken).state).toEqual(full);
    expect(tokens.verify(rotating.issue(full)).state).toEqual(full); // the first secret signs
    expect(reasonOf(() => tokens.verify(oldToken))).toBe('bad-signature');
  });

  it('refuses an expired token', () => {
    const short = new SessionTokens({ secret: SECRET, ttlMs: 60_000 });
    const token = short.issue(full, 1_000_000);
    expect(short.verify(token, { now: 1_000_000 + 59_000 }).state).toEqual(full);
    expect(reasonOf(() => short.verify(token, { now: 1_000_000 + 61_000 }))).toBe('expired');
    const verified = short.verify(token, { now: 1_000_000 });
    expect(short.needsRefresh(verified, 1_000_000)).toBe(false);
    expect(short.needsRefresh(verified, 1_000_000 + 31_000)).toBe(true);
  });

  it('refuses a 100 KB token unread, another version, and another cluster', () => {
    expect(reasonOf(() => tokens.verify('A'.repeat(100 * 1024)))).toBe('oversized');
    expect(reasonOf(() => tokens.verify('A'.repeat(MAX_TOKEN_LENGTH + 1)))).toBe('oversized');
    const bytes = Buffer.from(tokens.issue(full), 'base64url');
    bytes[0] = 3;
    expect(reasonOf(() => tokens.verify(bytes.toString('base64url')))).toBe('unsupported-version');
    expect(reasonOf(() => tokens.verify(tokens.issue(full), { stream: 'another' }))).toBe(
      'other-cluster',
    );
    expect(tokens.verify(tokens.issue(full), { stream }).state).toEqual(full);
  });

  it('rejects weak or missing secrets with CONFIG', () => {
    for (const secret of ['short', [], [SECRET, 'short'], undefined]) {
      expect(() => new SessionTokens({ secret } as never)).toThrow(
        expect.objectContaining({ code: ErrorCode.CONFIG }),
      );
    }
  });
});

describe('job sessions', () => {
  const tokens = new SessionTokens({ secret: SECRET });

  it('carry the enqueuing session to the worker', () => {
    const request = new SessionContext({ id: 'req' });
    request.noteWrite(full.writeFloor!);
    const payload = withSession(request, () => ({
      userId: 1,
      causewaySession: sessionForJob(tokens),
    }));
    expect(sessionForJob(tokens)).toBeUndefined();
    withJobSession(tokens, payload, (session) => {
      expect(currentSession()).toBe(session);
      expect(session.id).toBe('req');
      expect(session.writeFloor).toEqual(full.writeFloor);
    });
  });

  it('start a fresh session from a bad token and count it', async () => {
    const before = await otel.counter('causeway.session.invalid_tokens', {
      'causeway.reason': 'malformed',
    });
    withJobSession(tokens, { causewaySession: 'not a token' }, (session) => {
      expect(session.writeFloor).toBeUndefined();
    });
    // A payload that went through JSON may carry anything in the field: never a crash.
    for (const carried of [42, { token: 'x' }, ['a'], true]) {
      const job = JSON.parse(JSON.stringify({ causewaySession: carried }));
      withJobSession(tokens, job, (session) => expect(session.writeFloor).toBeUndefined());
    }
    expect(reasonOf(() => tokens.verify(42 as never))).toBe('malformed');
    expect(
      await otel.counter('causeway.session.invalid_tokens', { 'causeway.reason': 'malformed' }),
    ).toBe(before + 5);
  });
});
