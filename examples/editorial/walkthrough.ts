/**
 * The scripted walk-through: an HTTP client that plays editors, readers, commenters, new users
 * and two publisher instances against both halves of the site, the same requests each time,
 * and counts what the responses show. Nothing here trusts the server's routing: a preview is
 * stale when its version is older than the save it follows, a page goes back in time when its
 * version is older than one the same reader saw, and so on.
 *
 * To be deterministic it waits for replica states rather than for time: after an update it
 * waits until one replica has it (`POST /admin/replication/wait`), so that the other is still
 * behind while the readers read.
 */

/** `n` of `of` (e.g. 3 of 12 page loads). */
export interface Count {
  n: number;
  of: number;
}

export interface ModeReport {
  readonly stalePreviews: Count;
  readonly backInTime: Count;
  readonly orphanReplies: Count;
  readonly halfDoneSignups: Count;
  readonly staleWritesAccepted: Count;
  readonly lostDraftEdits: Count;
  readonly replicaReads: Count;
  /** One plain sentence per scene about what happened, in order. */
  readonly notes: readonly string[];
}

export interface WalkthroughReport {
  readonly off: ModeReport;
  readonly on: ModeReport;
}

/** The anomaly counts of a mode (everything but the replica reads). */
export const ANOMALIES = [
  ['stalePreviews', 'stale previews (an editor missing their own edit)'],
  ['backInTime', 'pages older than one the reader had seen'],
  ['orphanReplies', 'threads showing a reply before its comment'],
  ['halfDoneSignups', 'half-done signups (user without permissions)'],
  ['staleWritesAccepted', 'stale publisher writes accepted'],
  ['lostDraftEdits', 'draft edits lost'],
] as const satisfies readonly (readonly [keyof ModeReport, string])[];

interface ServedBy {
  node: string;
  replica: boolean;
}

interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON bodies, checked where they are used.
  body: any;
}

/** One person's browser: keeps the cookies the site sets, sends `x-user` when signed in. */
class Browser {
  readonly #cookies = new Map<string, string>();

  constructor(
    readonly base: string,
    readonly user: string | undefined,
    readonly reads: ServedBy[],
  ) {}

  get(path: string): Promise<Reply> {
    return this.#send('GET', path);
  }

  put(path: string, body: unknown): Promise<Reply> {
    return this.#send('PUT', path, body);
  }

  post(path: string, body: unknown = {}): Promise<Reply> {
    return this.#send('POST', path, body);
  }

  async #send(method: string, path: string, body?: unknown): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (this.user !== undefined) headers['x-user'] = this.user;
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.#cookies.size > 0) {
      headers['cookie'] = [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    }
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = cookie.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || attributes.some((a) => a.trim().toLowerCase() === 'max-age=0')) {
        this.#cookies.delete(name);
      } else {
        this.#cookies.set(name, value);
      }
    }
    const reply: Reply = { status: response.status, body: await response.json() };
    const served: ServedBy | ServedBy[] | undefined = reply.body?.servedBy;
    if (method === 'GET' && served !== undefined) this.reads.push(...[served].flat());
    return reply;
  }
}

/** Throws unless the reply has `status`: a walk-through that goes off script stops at once. */
function expectStatus(reply: Reply, status: number, what: string): Reply {
  if (reply.status !== status) {
    throw new Error(`${what}: HTTP ${reply.status} ${JSON.stringify(reply.body)}`);
  }
  return reply;
}

/**
 * Runs every scene against `${origin}/off` (Causeway off) and then `${origin}` (on), each with
 * its own articles, users and drafts, and returns the counts.
 */
export async function runWalkthrough(origin: string, runId: string): Promise<WalkthroughReport> {
  const off = await runMode(`${origin}/off`, `${runId}-off`);
  const on = await runMode(origin, `${runId}-on`);
  return { off, on };
}

async function runMode(base: string, id: string): Promise<ModeReport> {
  const reads: ServedBy[] = [];
  const browser = (user?: string) => new Browser(base, user, reads);
  const ops = browser();
  const notes: string[] = [];
  const { body: topology } = expectStatus(await ops.get('/admin/replication'), 200, 'topology');
  const replicaCount = (topology.nodes as { role: string }[]).filter(
    (n) => n.role === 'replica',
  ).length;
  /** Waits until `count` replicas have everything committed so far; names those still behind. */
  const replicasCatchUp = async (count = replicaCount): Promise<string[]> => {
    const reply = await ops.post('/admin/replication/wait', { replicas: count, timeoutMs: 10_000 });
    return expectStatus(reply, 200, 'waiting for replicas').body.behind as string[];
  };
  const behindNote = (behind: string[]) =>
    behind.length === 0 ? ' (every replica had caught up)' : ` (${behind.join(', ')} still behind)`;
  const election = `election-${id}`;
  const ben = browser('ben');
  const saveElection = async (version: number) =>
    expectStatus(
      await ben.put(`/articles/${election}`, {
        title: `Election night, edition ${version}`,
        body: `Results from ${version === 1 ? 'the first' : 'most'} districts.`,
      }),
      200,
      'saving an article',
    );
  // The article of scene 2, published now so that every replica has it by then.
  await saveElection(1);

  // 1. Editors save and preview at once: read-your-writes.
  const storm = `storm-${id}`;
  const ann = browser('ann');
  const annPhone = browser('ann');
  const stalePreviews: Count = { n: 0, of: 0 };
  const previewNodes = new Set<string>();
  let previewsOnLeader = 0;
  const preview = async (who: Browser, saved: number) => {
    const reply = await who.get(`/articles/${storm}/preview`);
    // 404: the node that served the preview does not have the article at all yet.
    const { body } = expectStatus(reply, reply.status === 404 ? 404 : 200, 'preview');
    stalePreviews.of++;
    if ((body.article?.version ?? 0) < saved) {
      stalePreviews.n++;
      previewNodes.add(body.servedBy.node);
    }
    if (!body.servedBy.replica) previewsOnLeader++;
    return body.servedBy as ServedBy;
  };
  let saved = 0;
  for (let edit = 1; edit <= 4; edit++) {
    const { body } = expectStatus(
      await ann.put(`/articles/${storm}`, {
        title: `Storm hits the coast (update ${edit})`,
        body: `Update ${edit}: the storm reached the coast at dawn.`,
      }),
      200,
      'saving an article',
    );
    saved = body.article.version;
    await preview(ann, saved);
  }
  await preview(annPhone, saved); // the same editor on another device, without her cookie
  await replicasCatchUp();
  const later = await preview(ann, saved);
  notes.push(
    stalePreviews.n > 0
      ? `${stalePreviews.n} of ${stalePreviews.of} previews lacked the editor's own edit ` +
          `(served by ${[...previewNodes].sort().join(', ')})`
      : `0 of ${stalePreviews.of} previews lacked it: the leader served ${previewsOnLeader} ` +
          `while no replica had the edit, then ${later.node} served the last`,
  );

  // 2. Readers refresh a page while an update replicates: monotonic reads.
  const readers = [browser(), browser(), browser()];
  const backInTime: Count = { n: 0, of: 0 };
  const newest = new Map<Browser, number>();
  const readPage = async (reader: Browser) => {
    const { body } = expectStatus(await reader.get(`/articles/${election}`), 200, 'article');
    const version: number = body.article.version;
    backInTime.of++;
    if (version < (newest.get(reader) ?? 0)) backInTime.n++;
    newest.set(reader, Math.max(version, newest.get(reader) ?? 0));
  };
  for (const reader of readers) await readPage(reader);
  await saveElection(2);
  let behind = await replicasCatchUp(1);
  for (const reader of readers) for (let i = 0; i < 3; i++) await readPage(reader);
  notes.push(
    `${backInTime.n} of ${backInTime.of} page loads were older than a page the same reader ` +
      `had already seen${behindNote(behind)}`,
  );

  // 3. A reader opens a thread just after a reply was posted: consistent prefix.
  const alice = browser('alice');
  const bob = browser('bob');
  const { body: asked } = expectStatus(
    await alice.post(`/articles/${storm}/comments`, { body: 'Is the coastal road closed?' }),
    201,
    'commenting',
  );
  expectStatus(
    await bob.post(`/articles/${storm}/comments`, {
      body: 'Yes, since six this morning.',
      replyTo: asked.comment.id,
    }),
    201,
    'replying',
  );
  behind = await replicasCatchUp(1);
  const carol = browser();
  const orphanReplies: Count = { n: 0, of: 0 };
  const openThread = async () => {
    const { body } = expectStatus(await carol.get(`/articles/${storm}/comments`), 200, 'thread');
    const shown = new Set((body.comments as { id: string }[]).map((c) => c.id));
    orphanReplies.of++;
    if ((body.replies as { replyTo: string }[]).some((r) => !shown.has(r.replyTo))) {
      orphanReplies.n++;
    }
  };
  await openThread();
  expectStatus(await carol.get(`/articles/${storm}`), 200, 'article');
  await openThread();
  notes.push(
    `${orphanReplies.n} of ${orphanReplies.of} thread loads showed a reply whose comment ` +
      `was missing${behindNote(behind)}`,
  );

  // 4. Three people sign up for a team with two seats left: users and grants in two databases.
  const team = `sports-${id}`;
  expectStatus(await ops.post('/admin/teams', { team, seats: 2 }), 201, 'creating a team');
  const halfDoneSignups: Count = { n: 0, of: 0 };
  let refused = 0;
  for (const name of ['dan', 'eve', 'fay']) {
    const email = `${name}-${id}@example.org`;
    const signup = await browser().post('/signup', { email, name, team, role: 'writer' });
    if (signup.status === 409) refused++;
    else expectStatus(signup, 201, 'signing up');
    const { body: account } = expectStatus(
      await ops.get(`/admin/accounts/${encodeURIComponent(email)}`),
      200,
      'account audit',
    );
    halfDoneSignups.of++;
    if ((account.user != null) !== account.grants.length > 0) halfDoneSignups.n++;
  }
  notes.push(
    `${refused} of 3 signups refused (no seat left); ${halfDoneSignups.n} of ` +
      `${halfDoneSignups.of} left half-done (a user without permissions, or the reverse)`,
  );

  // 5. Two publisher instances; the first pauses past its lease, then writes: fencing tokens.
  const a = '/admin/publisher/publisher-a';
  const b = '/admin/publisher/publisher-b';
  const first = await untilOk(() => ops.post(`${a}/begin`, { leaseTtlMs: 300 }), 'publisher-a');
  const second = await untilOk(() => ops.post(`${b}/run`, { leaseTtlMs: 300 }), 'publisher-b');
  const late = await ops.post(`${a}/commit`);
  const staleWritesAccepted: Count = { n: late.status === 200 ? 1 : 0, of: 1 };
  if (late.status !== 200) expectStatus(late, 409, 'the paused publisher');
  const { body: kept } = expectStatus(await ops.get('/admin/front-page'), 200, 'front page');
  for (const reader of readers) expectStatus(await reader.get('/front-page'), 200, 'front page');
  notes.push(
    late.status === 200
      ? `publisher-a (token ${first.token}) wrote after publisher-b (token ${second.token}); ` +
          `the front page is now ${kept.frontPage.worker}'s older edition`
      : `publisher-a's write with token ${first.token} was refused (${late.body.code}); ` +
          `the front page kept publisher-b's edition (token ${kept.frontPage.token})`,
  );

  // 6. Two editors edit a draft offline and sync: siblings for the body, LWW for the headline.
  const draft = `/drafts/brief-${id}`;
  const brief = 'Storm brief.';
  expectStatus(await ann.put(draft, { body: brief, headline: 'Storm warning' }), 200, 'draft');
  const annCopy = expectStatus(await ann.get(draft), 200, 'draft').body;
  const benCopy = expectStatus(await ben.get(draft), 200, 'draft').body;
  const edits = [
    [ann, annCopy, `${brief} Coastal roads are closed.`, 'Storm closes coastal roads'],
    [ben, benCopy, `${brief} Ferries are cancelled.`, 'Ferries cancelled as storm nears'],
  ] as const;
  for (const [editor, copy, body, headline] of edits) {
    const { context, headlineContext } = copy;
    expectStatus(
      await editor.put(draft, { body, headline, context, headlineContext }),
      200,
      'syncing a draft',
    );
  }
  const synced = expectStatus(await ann.get(draft), 200, 'draft').body;
  const bodies = synced.bodies as string[];
  const lost = edits.filter(([, , body]) => !bodies.includes(body)).length;
  let merged = '';
  if (bodies.length > 1) {
    // Ann resolves the conflict: one body over every version she has seen.
    const both = `${brief} Coastal roads are closed. Ferries are cancelled.`;
    const { body } = await ann.put(draft, { body: both, context: synced.context });
    merged = `; ann merged them into ${body.bodies.length}`;
  }
  notes.push(
    `${lost} of 2 offline edits lost; the draft had ${bodies.length} version(s)${merged}; ` +
      `headline "${synced.headline}"`,
  );

  const onReplicas = reads.filter((read) => read.replica).length;
  return {
    stalePreviews,
    backInTime,
    orphanReplies,
    halfDoneSignups,
    staleWritesAccepted,
    lostDraftEdits: { n: lost, of: edits.length },
    replicaReads: { n: onReplicas, of: reads.length },
    notes,
  };
}

/** Retries `attempt` every 50 ms while the lease is held elsewhere (HTTP 503), up to 10 s. */
async function untilOk(attempt: () => Promise<Reply>, what: string): Promise<{ token: string }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const reply = await attempt();
    if (reply.status === 200) return reply.body;
    if (reply.status !== 503 || Date.now() > deadline) expectStatus(reply, 200, what);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const SCENES = [
  'Editors save an article and open the preview at once (read-your-writes)',
  'Readers refresh an article while an update replicates (monotonic reads)',
  'A reader opens a comment thread just after a reply was posted (consistent prefix)',
  'Three people sign up for a team with two seats left (users and grants in two databases: 2PC)',
  'Two publisher instances; the first pauses past its lease, then writes (fencing tokens)',
  'Two editors edit a draft offline, then sync (siblings for the body, LWW for the headline)',
];

/** The report in plain words: each scene with and without Causeway, then a table of counts. */
export function formatReport(report: WalkthroughReport): string {
  const lines: string[] = [];
  SCENES.forEach((scene, i) => {
    lines.push(`${i + 1}. ${scene}`);
    lines.push(`   without Causeway: ${report.off.notes[i]}`);
    lines.push(`   with Causeway:    ${report.on.notes[i]}`);
  });
  const count = ({ n, of }: Count) => `${n} of ${of}`;
  const row = (label: string, off: string, on: string) =>
    `  ${label.padEnd(50)}${off.padStart(18)}${on.padStart(18)}`;
  lines.push('', row('', 'without Causeway', 'with Causeway'));
  for (const [key, label] of ANOMALIES) {
    lines.push(row(label, count(report.off[key]), count(report.on[key])));
  }
  const share = (c: Count) => (c.of === 0 ? 0 : Math.round((100 * c.n) / c.of));
  lines.push(
    row(
      'reads served by replicas',
      count(report.off.replicaReads),
      `${count(report.on.replicaReads)} (${share(report.on.replicaReads)}%)`,
    ),
  );
  return lines.join('\n');
}

/** True when Causeway on showed no anomaly and served most reads from replicas. */
export function causewayHeld(report: WalkthroughReport): boolean {
  const { on } = report;
  return ANOMALIES.every(([key]) => on[key].n === 0) && on.replicaReads.n * 2 > on.replicaReads.of;
}
