import { invalidInput } from '../errors.js';
import type { TransactionBranch, TwoPhaseTransaction } from './options.js';
import type { Participant, ParticipantBranch, ParticipantQueryResult } from './participant.js';

/**
 * What `fn` sees of one transaction: its gid and a handle per participant, whose first
 * statement begins the branch. Classes rather than per-transaction closures: a transaction
 * allocates only what it uses.
 */
export class TransactionScope implements TwoPhaseTransaction {
  /** Branches begun (or beginning), by participant name, in the order first used. */
  readonly branches = new Map<string, Promise<ParticipantBranch>>();
  /** Set once `fn` has settled: later statements are refused. */
  finished = false;
  private readonly handles = new Map<string, BranchHandle>();

  constructor(
    readonly gid: string,
    private readonly participants: ReadonlyMap<string, Participant>,
  ) {}

  participant(name: string): TransactionBranch {
    let handle = this.handles.get(name);
    if (handle !== undefined) return handle;
    const participant = this.participants.get(name);
    if (participant === undefined) {
      const shown = typeof name === 'string' ? name.slice(0, 64) : typeof name;
      throw invalidInput(`unknown participant "${shown}"`, {
        known: [...this.participants.keys()],
      });
    }
    handle = new BranchHandle(this, name, participant);
    this.handles.set(name, handle);
    return handle;
  }
}

class BranchHandle implements TransactionBranch {
  constructor(
    private readonly scope: TransactionScope,
    private readonly name: string,
    private readonly participant: Participant,
  ) {}

  async query<Row = Record<string, unknown>>(
    text: string,
    values?: readonly unknown[],
  ): Promise<ParticipantQueryResult<Row>> {
    if (this.scope.finished) {
      throw invalidInput('the transaction is already finished; statements must run in fn');
    }
    let branch = this.scope.branches.get(this.name);
    if (branch === undefined) {
      branch = this.participant.begin();
      this.scope.branches.set(this.name, branch);
    }
    return (await branch).query<Row>(text, values);
  }
}
