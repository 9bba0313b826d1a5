import { describe, expect, it } from 'vitest';
import { CausewayError, ErrorCode, isCausewayError } from '../../../src/errors.js';

describe('CausewayError', () => {
  it('carries a stable code, the cause and details', () => {
    const cause = new Error('socket closed');
    const error = new CausewayError(ErrorCode.TXN_IN_DOUBT, 'in doubt', {
      cause,
      details: { gid: 'g' },
    });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('CausewayError');
    expect(error.code).toBe('TXN_IN_DOUBT');
    expect(error.cause).toBe(cause);
    expect(error.details).toEqual({ gid: 'g' });
    expect(isCausewayError(error, 'TXN_IN_DOUBT')).toBe(true);
    expect(isCausewayError(error, 'CONFIG')).toBe(false);
    expect(isCausewayError(cause)).toBe(false);
  });

  it('maps client input errors to 400 and the rest to their HTTP status', () => {
    const status = (code: ErrorCode) => new CausewayError(code, code).httpStatus;
    expect(status('INVALID_INPUT')).toBe(400);
    expect(status('INVALID_SESSION_TOKEN')).toBe(400);
    expect(status('STALE_FENCING_TOKEN')).toBe(409);
    expect(status('NO_REPLICA_CAUGHT_UP')).toBe(503);
    expect(status('NO_PRIMARY')).toBe(503);
    expect(status('TXN_ABORTED')).toBe(500);
  });

  it('has exactly the codes of the design contract', () => {
    expect(Object.keys(ErrorCode).sort()).toEqual(
      [
        'INVALID_SESSION_TOKEN',
        'NO_REPLICA_CAUGHT_UP',
        'NO_PRIMARY',
        'STALE_FENCING_TOKEN',
        'LEASE_NOT_HELD',
        'TXN_ABORTED',
        'TXN_IN_DOUBT',
        'CONFLICTING_WRITE',
        'CLOCK_DRIFT',
        'TOO_MANY_SIBLINGS',
        'INVALID_INPUT',
        'CONFIG',
      ].sort(),
    );
  });
});
