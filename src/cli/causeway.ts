#!/usr/bin/env node
/**
 * `causeway txn list|resolve`: operator tools for in-doubt distributed transactions.
 * It loads `pg` only when run (never when the library is imported).
 */
import { parseArgs } from 'node:util';
import { PgDecisionLog } from '../../adapters/pg/decision-log.js';
import { PgParticipant } from '../../adapters/pg/participant.js';
import type { PgQueryablePool } from '../../adapters/pg/sql.js';
import { isCausewayError } from '../errors.js';
import type { Decision, DecisionRecord } from '../txn/decision-log.js';
import { coordinatorPrefix, GID_SCHEME, parseGid, tryParseGid } from '../txn/gid.js';
import type { PreparedBranch } from '../txn/participant.js';
import { finishBranch } from '../txn/recovery.js';

const USAGE = `Usage:
  causeway txn list [options]
      Lists prepared (in-doubt) branches with age, coordinator, participant and logged decision.
  causeway txn resolve <gid> [--commit | --rollback] [options]
      Finishes every prepared branch of a transaction (<gid> may be the transaction's gid or a
      branch's). Defaults to the logged decision and refuses to contradict it. With no logged
      decision, --commit or --rollback is required and is recorded first (only when a branch
      of the transaction is prepared on a participant given). Gids that merely share the
      transaction's prefix (another tool's) are skipped.

Options:
  -p, --participant <name>=<url>  A participant's PostgreSQL connection string (repeatable).
                                  Env: CAUSEWAY_PARTICIPANTS="users=postgres://...,perms=..."
  -l, --log <url>                 The decision log's database. Env: CAUSEWAY_DECISION_LOG_URL
      --log-table <name>          Decision table. Env: CAUSEWAY_DECISION_LOG_TABLE
                                  (default: causeway_2pc_decisions)
  -c, --coordinator <id>          Only this coordinator's transactions (list).
      --json                      Machine-readable output (list).
  -h, --help                      This text.

Exit codes: 0 done, 1 failure (connection, heuristic outcome), 2 usage error,
            3 refused (would contradict the logged decision, or no decision and no flag).`;

/** SQLSTATE for a missing table. */
const UNDEFINED_TABLE = '42P01';

class UsageError extends Error {}
class Refused extends Error {}

interface Options {
  participants: Map<string, string>;
  log: string | undefined;
  logTable: string | undefined;
  coordinator: string | undefined;
  json: boolean;
  commit: boolean;
  rollback: boolean;
  positionals: string[];
}

function readOptions(argv: string[], env: NodeJS.ProcessEnv): Options | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      participant: { type: 'string', short: 'p', multiple: true },
      log: { type: 'string', short: 'l' },
      'log-table': { type: 'string' },
      coordinator: { type: 'string', short: 'c' },
      json: { type: 'boolean' },
      commit: { type: 'boolean' },
      rollback: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const specs = values.participant ?? (env['CAUSEWAY_PARTICIPANTS'] ?? '').split(',');
  const participants = new Map<string, string>();
  for (const spec of specs.map((s) => s.trim()).filter((s) => s !== '')) {
    const at = spec.indexOf('=');
    if (at <= 0) throw new UsageError(`--participant takes <name>=<url>, got "${spec}"`);
    participants.set(spec.slice(0, at), spec.slice(at + 1));
  }
  if (participants.size === 0) {
    throw new UsageError('give at least one --participant <name>=<url> (or CAUSEWAY_PARTICIPANTS)');
  }
  return {
    participants,
    log: values.log ?? env['CAUSEWAY_DECISION_LOG_URL'],
    logTable: values['log-table'] ?? env['CAUSEWAY_DECISION_LOG_TABLE'],
    coordinator: values.coordinator,
    json: values.json ?? false,
    commit: values.commit ?? false,
    rollback: values.rollback ?? false,
    positionals,
  };
}

interface Connections {
  participants: Map<string, PgParticipant>;
  log: PgDecisionLog | undefined;
  end(): Promise<void>;
}

async function connect(options: Options): Promise<Connections> {
  const { default: pg } = await import('pg');
  const pools: { end(): Promise<void> }[] = [];
  const pool = (connectionString: string): PgQueryablePool => {
    const created = new pg.Pool({ connectionString, max: 1 });
    // An idle client's error (server restart) must not crash the tool.
    created.on('error', () => {});
    pools.push(created);
    return created;
  };
  const participants = new Map<string, PgParticipant>();
  for (const [name, url] of options.participants) {
    participants.set(name, new PgParticipant({ pool: pool(url) }));
  }
  const log =
    options.log === undefined
      ? undefined
      : new PgDecisionLog({
          pool: pool(options.log),
          createTable: false,
          ...(options.logTable === undefined ? {} : { table: options.logTable }),
        });
  return {
    participants,
    log,
    end: async () => {
      await Promise.allSettled(pools.map((p) => p.end()));
    },
  };
}

function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

async function list(options: Options, out: (line: string) => void): Promise<number> {
  const conn = await connect(options);
  try {
    const prefix =
      options.coordinator === undefined ? `${GID_SCHEME}:` : coordinatorPrefix(options.coordinator);
    const rows: (PreparedBranch & { server: string; decision: string })[] = [];
    let failed = false;
    const decisions = new Map<string, DecisionRecord>();
    let log = conn.log;
    if (log !== undefined) {
      try {
        for (const record of await log.list(prefix)) decisions.set(record.gid, record);
      } catch (error) {
        if ((error as { code?: string }).code !== UNDEFINED_TABLE) throw error;
        process.stderr.write(
          'causeway: no decision table there (see --log-table); decisions shown as ?\n',
        );
        log = undefined;
      }
    }
    for (const [server, participant] of conn.participants) {
      try {
        for (const branch of await participant.listPrepared(prefix)) {
          const parsed = tryParseGid(branch.gid);
          const decision =
            log === undefined
              ? '?'
              : parsed === undefined
                ? '-'
                : (decisions.get(parsed.txnGid)?.decision ?? 'none');
          rows.push({ ...branch, server, decision });
        }
      } catch (error) {
        failed = true;
        process.stderr.write(`${server}: ${error instanceof Error ? error.message : error}\n`);
      }
    }
    if (options.json) {
      out(
        JSON.stringify(
          rows.map((row) => ({
            gid: row.gid,
            server: row.server,
            database: row.database,
            coordinator: tryParseGid(row.gid)?.coordinatorId ?? null,
            participant: tryParseGid(row.gid)?.participant ?? null,
            ageMs: row.ageMs,
            preparedAt: row.preparedAt.toISOString(),
            decision: row.decision,
          })),
        ),
      );
    } else if (rows.length === 0) {
      out('no prepared transactions');
    } else {
      const table = [
        ['GID', 'SERVER', 'AGE', 'COORDINATOR', 'PARTICIPANT', 'DECISION'],
        ...rows.map((row) => {
          const parsed = tryParseGid(row.gid);
          return [
            printable(row.gid),
            `${row.server} (${printable(row.database)})`,
            formatAge(row.ageMs),
            parsed?.coordinatorId ?? '-',
            parsed?.participant ?? '-',
            row.decision,
          ];
        }),
      ];
      const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
      for (const r of table)
        out(
          r
            .map((cell, i) => cell.padEnd(widths[i]!))
            .join('  ')
            .trimEnd(),
        );
    }
    return failed ? 1 : 0;
  } finally {
    await conn.end();
  }
}

/**
 * Text from the database shown in a terminal: control characters (escape sequences a database
 * user could put in a gid) are written as `\u{..}` so they cannot act on the operator's terminal.
 */
function printable(text: string): string {
  let shown = '';
  for (const char of text) {
    const code = char.codePointAt(0)!;
    const control = code < 0x20 || (code >= 0x7f && code <= 0x9f);
    shown += control ? `\\u{${code.toString(16)}}` : char;
  }
  return shown;
}

async function resolve(options: Options, out: (line: string) => void): Promise<number> {
  const [input, ...extra] = options.positionals;
  if (input === undefined || extra.length > 0) throw new UsageError('resolve takes one <gid>');
  if (options.commit && options.rollback) throw new UsageError('--commit or --rollback, not both');
  if (options.log === undefined) {
    throw new UsageError(
      'resolve needs the decision log: --log <url> (or CAUSEWAY_DECISION_LOG_URL)',
    );
  }
  const { txnGid, participant: named } = parseGid(input);
  if (named !== undefined && !options.participants.has(named)) {
    throw new UsageError(`${input} names participant "${named}", which no --participant gives`);
  }
  const asked: Decision | undefined = options.commit
    ? 'commit'
    : options.rollback
      ? 'abort'
      : undefined;
  const conn = await connect(options);
  try {
    const log = conn.log!;
    // Listed before any decision is recorded: only a branch this transaction owns (its gid is
    // exactly `<txnGid>:<name>` on the participant called <name>) may lead to one. Other gids
    // that share the prefix belong to other software and are left alone.
    const owned: { name: string; branch: PreparedBranch }[] = [];
    for (const [name, participant] of conn.participants) {
      for (const branch of await participant.listPrepared(`${txnGid}:`)) {
        const parsed = tryParseGid(branch.gid);
        if (parsed?.txnGid === txnGid && parsed.participant === name) {
          owned.push({ name, branch });
        } else {
          process.stderr.write(
            `causeway: skipping ${printable(branch.gid)} on ${name}: not a branch of ${txnGid}\n`,
          );
        }
      }
    }
    let record = await log.get(txnGid);
    if (record === undefined) {
      if (owned.length === 0) {
        out(`no prepared branch of ${txnGid} on the given participants; nothing recorded`);
        return 0;
      }
      if (asked === undefined) {
        throw new Refused(
          `no decision is logged for ${txnGid}: pass --commit or --rollback ` +
            '(recovery would roll it back: presumed abort)',
        );
      }
      record = await log.record(txnGid, asked, [...conn.participants.keys()]);
    }
    if (asked !== undefined && record.decision !== asked) {
      throw new Refused(
        `the logged decision for ${txnGid} is ${record.decision}; refusing to ` +
          `${asked === 'commit' ? 'commit' : 'roll back'}`,
      );
    }
    let failed = false;
    for (const { name, branch } of owned) {
      const finish = await finishBranch(
        conn.participants.get(name)!,
        name,
        branch.gid,
        record.decision,
        branch.xid,
      );
      if (finish.kind === 'heuristic') {
        failed = true;
        out(
          `${branch.gid}: HEURISTIC: found ${finish.event.observed}, decision ${record.decision}`,
        );
      } else {
        out(`${branch.gid}: ${record.decision === 'commit' ? 'committed' : 'rolled back'}`);
      }
    }
    if (owned.length === 0) out(`no prepared branch of ${txnGid} on the given participants`);
    return failed ? 1 : 0;
  } finally {
    await conn.end();
  }
}

/** Runs the CLI; resolves to the exit code. */
async function main(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  out: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): Promise<number> {
  const fail = (code: number, message: string) => {
    process.stderr.write(`causeway: ${message}\n`);
    return code;
  };
  try {
    const [area, command, ...rest] = argv;
    if (area === '-h' || area === '--help' || area === undefined) {
      out(USAGE);
      return area === undefined ? 2 : 0;
    }
    if (area !== 'txn' || (command !== 'list' && command !== 'resolve')) {
      throw new UsageError(`unknown command "${[area, command].filter(Boolean).join(' ')}"`);
    }
    const options = readOptions(rest, env);
    if (options === 'help') {
      out(USAGE);
      return 0;
    }
    return command === 'list' ? await list(options, out) : await resolve(options, out);
  } catch (error) {
    if (
      error instanceof UsageError ||
      (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      return fail(2, `${(error as Error).message}\n\n${USAGE}`);
    }
    if (error instanceof Refused) return fail(3, error.message);
    if (isCausewayError(error, 'INVALID_INPUT')) return fail(2, error.message);
    return fail(1, error instanceof Error ? error.message : String(error));
  }
}

process.exitCode = await main(process.argv.slice(2));
