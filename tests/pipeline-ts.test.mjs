// The issue-resolution pipeline from TypeScript (@miyabi/code's issueResolution, over the built
// package and its debug addon): the demo repository of agents/demo/make-repo.sh (calc.sh
// subtracts, so `sh test.sh` fails; ISSUE.md says so) with the demo's replayed model
// (agents/demo/replay.json, answers written for that repository, served on 127.0.0.1 by the
// addon). The run suspends at the approval gate, is approved from TypeScript, and ends with the
// test fixed on the branch miyabi/issue-7 in one Conventional Commits commit and the deploy
// healthy. With `issueFile` and no GitHub the PR is only committed (the documented local
// behaviour); with a loopback server answering like GitHub's API, a second process on the same
// database approves a run the first process started and left at the gate, and one draft PR with
// the PRAgent's title and body is opened.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, MiyabiError } from '@miyabi/core';
import { issueResolution } from '../packages/code/dist/esm/index.js';
import { lastJson, tempDir } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const replay = join(root, 'agents', 'demo', 'replay.json');
const TITLE = 'fix(calc): add the arguments instead of subtracting them';
const TOKEN = 'ghp_ts_pipeline_token_never_printed';

function git(dir, ...args) {
  return execFileSync('git', args, { cwd: dir, stdio: 'pipe' }).toString().trim();
}

function passes(dir, script) {
  try {
    execFileSync('sh', [script], { cwd: dir, stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** The demo repository (with a bare `origin`), where it deploys to, and the run database. */
function setup(t) {
  const dir = tempDir(t);
  const repo = join(dir, 'repo');
  const deployed = join(dir, 'deployed');
  execFileSync('sh', [join(root, 'agents', 'demo', 'make-repo.sh'), repo, deployed], { stdio: 'pipe' });
  const origin = join(dir, 'origin.git');
  git(dir, 'init', '-q', '--bare', origin);
  git(repo, 'remote', 'add', 'origin', origin);
  git(repo, 'push', '-q', 'origin', 'main');
  assert.equal(passes(repo, 'test.sh'), false, 'the test fails before the run');
  return { dir, repo, deployed, origin, db: `sqlite:${join(dir, 'runs.db')}` };
}

/** The branch's tip checked out aside: its test and lint pass. */
function checkBranch(s, tip) {
  const check = join(s.dir, 'check');
  git(s.repo, 'worktree', 'add', '-q', '--detach', check, tip);
  try {
    assert.equal(passes(check, 'test.sh'), true, 'the test passes on the branch');
    assert.equal(passes(check, 'lint.sh'), true, 'lint passes on the branch');
  } finally {
    git(s.repo, 'worktree', 'remove', '--force', check);
  }
  assert.equal(passes(s.repo, 'test.sh'), false, 'main is untouched');
  assert.equal(execFileSync('sh', [join(s.deployed, 'calc.sh'), '2', '3']).toString().trim(), '5', 'the fix was deployed');
}

/** A loopback server answering like GitHub's REST API for what the pipeline calls; it keeps
 * the requests (method, path, body, authorization) and the pull requests opened. */
async function fakeGitHub(t, { onLabels } = {}) {
  const requests = [];
  const pulls = [];
  const labels = new Map();
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      const body = raw === '' ? null : JSON.parse(raw);
      const url = new URL(req.url, 'http://127.0.0.1');
      requests.push({ method: req.method, path: url.pathname, query: url.search, body, auth: req.headers.authorization });
      const send = (status, value) => {
        res.writeHead(status, { 'content-type': 'application/json', 'x-ratelimit-remaining': '4999', 'x-ratelimit-reset': '4102444800' });
        res.end(JSON.stringify(value));
      };
      const route = `${req.method} ${url.pathname}`;
      if (route === 'GET /repos/acme/calc/issues/7') {
        return send(200, {
          id: 1007, number: 7, state: 'open', title: 'calc.sh subtracts instead of adding',
          body: '`sh calc.sh 2 3` prints -1; it should print 5. `sh test.sh` fails.',
          html_url: 'https://github.com/acme/calc/issues/7', user: { login: 'octocat', id: 1 },
          labels: (labels.get(7) ?? ['agent:codegen']).map((name) => ({ id: 1, name, color: 'ededed' })),
        });
      }
      if (route === 'GET /repos/acme/calc/issues/7/comments') return send(200, []);
      if (route === 'PUT /repos/acme/calc/issues/7/labels') {
        // The hook may hold the request unanswered (its client is being killed).
        if (onLabels?.(body.labels) === 'hold') return;
        labels.set(7, body.labels);
        return send(200, body.labels.map((name) => ({ id: 1, name, color: 'ededed', default: false })));
      }
      if (route === 'GET /repos/acme/calc/pulls') {
        const head = url.searchParams.get('head');
        return send(200, pulls.filter((p) => `acme:${p.head.ref}` === head));
      }
      if (route === 'POST /repos/acme/calc/pulls') {
        const n = 100 + pulls.length;
        const pr = {
          id: n, number: n, state: 'open', title: body.title, body: body.body, draft: body.draft,
          html_url: `https://github.com/acme/calc/pull/${n}`, head: { ref: body.head }, base: { ref: body.base },
        };
        pulls.push(pr);
        return send(201, pr);
      }
      return send(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  return { url: `http://127.0.0.1:${server.address().port}`, requests, pulls, labels };
}

/** Runs `node script` without blocking this process's event loop (the fake GitHub answers
 * the child meanwhile); `started(child)` gets the child process. */
function node(script, env, started = () => {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    started(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The pipeline on the demo repository's issue file (no GitHub), approved by alice; closed after `t`. */
async function localPipeline(t, s) {
  const pipeline = await issueResolution({
    repo: s.repo,
    db: s.db,
    replay,
    issueFile: join(s.repo, 'ISSUE.md'),
    approvers: ['alice'],
  });
  t.after(() => pipeline.close());
  return pipeline;
}

test('issueResolution with an issue file: suspends at the gate, approved from TypeScript it commits the fix on the branch and deploys', async (t) => {
  const s = setup(t);
  const pipeline = await localPipeline(t, s);
  assert.deepEqual(pipeline.approvers, ['alice']);

  const run = await pipeline.start({ issue: 7 });
  assert.equal(run.status, 'suspended', run.error ?? '');
  assert.equal(run.workflow, 'issue-resolution');
  assert.equal(run.issue, 7);
  assert.equal(run.input.issue.title, 'calc.sh subtracts instead of adding');
  assert.deepEqual(run.suspended.map((x) => x.path), ['approval']);
  assert.ok(run.gate, 'the gate is shown');
  assert.equal(run.gate.title, 'Open the pull request and deploy?');
  assert.equal(run.gate.summary, 'review 93/100; test passed, lint passed, security passed');
  assert.equal(run.gate.data.review.score, 93, 'after one fix round');
  assert.equal(run.gate.data.checks.test.passed, true);
  assert.deepEqual(run.gate.approvers, ['alice']);
  assert.equal(run.output, null);
  assert.equal(git(s.repo, 'branch', '--list', 'miyabi/issue-7'), 'miyabi/issue-7', 'the branch exists before the approval');

  // Starting the same issue again continues the waiting run instead of making a second.
  const again = await pipeline.start({ issue: 7 });
  assert.equal(again.id, run.id);
  assert.equal((await pipeline.list({ issue: 7 })).length, 1);

  // Only an approver decides; the gate is not resumed like other paths.
  await assert.rejects(
    () => pipeline.approve(run.id, { as: 'mallory' }),
    (e) => e instanceof MiyabiError && e.code === 'FORBIDDEN' && /mallory/.test(e.message) && /alice/.test(e.message),
  );
  await assert.rejects(
    () => pipeline.resume(run.id, 'approval', { approved: true }),
    (e) => e instanceof MiyabiError && e.code === 'INVALID_ARGUMENT' && /approve\/reject/.test(e.message),
  );
  assert.equal((await pipeline.get(run.id)).status, 'suspended');

  const done = await pipeline.approve(run.id, { as: 'alice', comment: 'ship it' });
  assert.equal(done.status, 'succeeded', done.error ?? '');
  assert.equal(done.gate, null);
  const out = done.output;
  assert.equal(out.issue, 7);
  assert.equal(out.branch, 'miyabi/issue-7');
  assert.equal(out.review.score, 93);
  // No GitHub: the PR is drafted and the branch committed, nothing is sent.
  assert.equal(out.pr.opened, false);
  assert.equal(out.pr.reason, 'no GitHub repository configured');
  assert.equal(out.pr.title, TITLE);
  assert.match(out.pr.body, /Closes #7/);
  assert.match(out.pr.body, /## Testing/);
  assert.equal(out.deploy.deployed, true);
  assert.equal(out.deploy.healthy, true, out.deploy.summary);

  // One commit on main with the PR's title and body, whose tree has the fix.
  const tip = git(s.repo, 'rev-parse', 'miyabi/issue-7');
  assert.equal(out.pr.commit, tip);
  assert.equal(git(s.repo, 'log', '-1', '--format=%s', tip), TITLE);
  assert.match(git(s.repo, 'log', '-1', '--format=%b', tip), /Closes #7/);
  assert.equal(git(s.repo, 'rev-parse', `${tip}^`), git(s.repo, 'rev-parse', 'main'));
  checkBranch(s, tip);
  assert.equal(git(s.repo, 'worktree', 'list').split('\n').length, 1, 'no worktree is left behind');

  // A finished run is a finished run: deciding again is a conflict.
  await assert.rejects(
    () => pipeline.approve(run.id, { as: 'alice' }),
    (e) => e instanceof MiyabiError && e.code === 'CONFLICT',
  );
  pipeline.close();
  await assert.rejects(() => pipeline.get(run.id), (e) => e instanceof MiyabiError && e.code === 'SHUTDOWN');
});

test("the pipeline's gate is in @miyabi/core's approvals inbox on the same database; decided there, the pipeline's worker finishes the run", async (t) => {
  const s = setup(t);
  const pipeline = await localPipeline(t, s);
  const run = await pipeline.start({ issue: 7 });
  assert.equal(run.status, 'suspended', run.error ?? '');

  // A plain @miyabi/core engine on the run database (an approvals service, a dashboard's
  // backend): it has no pipeline workflow, only the gates.
  const engine = await Engine.open({ store: s.db });
  t.after(() => engine.close());
  assert.deepEqual(await engine.approvals.inbox({ id: 'mallory' }), [], 'not an approver: an empty inbox');
  const inbox = await engine.approvals.inbox({ id: 'alice' });
  assert.equal(inbox.length, 1);
  assert.equal(inbox[0].runId, run.id);
  assert.equal(inbox[0].gate, 'approval');
  assert.equal(inbox[0].title, 'Open the pull request and deploy?');
  assert.equal(inbox[0].summary, 'review 93/100; test passed, lint passed, security passed');
  await assert.rejects(
    () => engine.approvals.decide(run.id, 'approval', { id: 'mallory' }, { action: 'approve' }),
    (e) => e instanceof MiyabiError && e.code === 'FORBIDDEN',
  );
  const decided = await engine.approvals.decide(run.id, 'approval', { id: 'alice' }, { action: 'approve', comment: 'from the inbox' });
  assert.equal(decided.status, 'approved');

  // The pipeline's engine (its worker hands decided gates to its runs) finishes the run.
  let done = await pipeline.get(run.id);
  for (const until = Date.now() + 120_000; done.status === 'suspended' || done.status === 'running'; ) {
    assert.ok(Date.now() < until, `the run is still ${done.status} two minutes after the decision`);
    await new Promise((r) => setTimeout(r, 50));
    done = await pipeline.get(run.id);
  }
  assert.equal(done.status, 'succeeded', done.error ?? '');
  assert.equal(done.output.deploy.deployed, true);
  assert.equal(git(s.repo, 'log', '-1', '--format=%s', 'miyabi/issue-7'), TITLE);
  const audit = await engine.approvals.audit({ runId: run.id });
  assert.ok(audit.some((a) => a.actor === 'alice' && a.comment === 'from the inbox'), JSON.stringify(audit));
});

test('issueResolution with GitHub: a run started by one process and left at the gate is approved by another, which opens one draft PR', async (t) => {
  const s = setup(t);
  const gh = await fakeGitHub(t);
  const options = {
    repo: s.repo,
    db: s.db,
    replay,
    github: { owner: 'acme', repo: 'calc', token: TOKEN, apiUrl: gh.url },
    approvers: ['alice'],
  };
  // The first process: starts the run for issue #7 (read from GitHub), prints it at the gate, exits.
  const first = await node(firstProcess(s), { PIPELINE_OPTIONS: JSON.stringify(options) });
  assert.equal(first.code, 0, `first process: ${first.stderr}\n${first.stdout}`);
  assert.ok(!first.stdout.includes(TOKEN) && !first.stderr.includes(TOKEN), 'the token was not printed');
  const run = lastJson(first.stdout);
  assert.equal(run.status, 'suspended', run.error ?? '');
  assert.equal(run.gate.summary, 'review 93/100; test passed, lint passed, security passed');
  assert.equal(run.input.issue.title, 'calc.sh subtracts instead of adding', 'the issue came from GitHub');
  assert.ok(gh.requests.some((r) => r.method === 'GET' && r.path === '/repos/acme/calc/issues/7/comments'));
  assert.equal(gh.pulls.length, 0, 'no PR before the approval');
  assert.ok(gh.labels.get(7).includes('state:implementing'), `${gh.labels.get(7)}`);

  // The second process (this one): another engine on the same database decides the gate.
  const pipeline = await issueResolution(options);
  t.after(() => pipeline.close());
  const waiting = await pipeline.get(run.id);
  assert.equal(waiting.status, 'suspended');
  assert.equal(waiting.gate.path, 'approval');
  const done = await pipeline.approve(run.id, { as: 'alice', comment: 'ship it' });
  assert.equal(done.status, 'succeeded', done.error ?? '');
  assert.equal(done.output.pr.opened, true);
  assert.equal(done.output.pr.number, 100);
  assert.equal(done.output.pr.url, 'https://github.com/acme/calc/pull/100');

  // One draft PR request, with PRAgent's title and a body closing the issue.
  const posts = gh.requests.filter((r) => r.method === 'POST' && r.path === '/repos/acme/calc/pulls');
  assert.equal(posts.length, 1, 'one PR request');
  assert.deepEqual(
    { title: posts[0].body.title, head: posts[0].body.head, base: posts[0].body.base, draft: posts[0].body.draft },
    { title: TITLE, head: 'miyabi/issue-7', base: 'main', draft: true },
  );
  assert.match(posts[0].body.body, /Closes #7/);
  assert.match(posts[0].body.body, /## Testing/);
  assert.ok(gh.requests.every((r) => r.auth === `Bearer ${TOKEN}`), 'every request carries the token');
  const labels = gh.labels.get(7);
  for (const l of ['agent:codegen', 'type:bug', 'state:reviewing']) assert.ok(labels.includes(l), `${labels}`);

  // The branch was pushed: one commit on main with the title; the test passes there.
  const tip = git(s.origin, 'rev-parse', 'miyabi/issue-7');
  assert.equal(git(s.origin, 'log', '-1', '--format=%s', tip), TITLE);
  assert.equal(git(s.origin, 'rev-parse', `${tip}^`), git(s.repo, 'rev-parse', 'main'));
  checkBranch(s, tip);
});

/** A script that starts the pipeline for issue #7 with the options in PIPELINE_OPTIONS and
 * prints the run where it stops. */
function firstProcess(s) {
  const script = join(s.dir, 'first.mjs');
  const entry = join(root, 'packages', 'code', 'dist', 'esm', 'index.js');
  writeFileSync(
    script,
    `import { issueResolution } from ${JSON.stringify(entry)};
const pipeline = await issueResolution(JSON.parse(process.env.PIPELINE_OPTIONS));
const run = await pipeline.start({ issue: 7 });
pipeline.close();
console.log(JSON.stringify(run));
`,
  );
  return script;
}

test('a run whose process was killed (SIGKILL in the analyze step) is taken over by recover() in another process and opens one PR', async (t) => {
  const s = setup(t);
  let child;
  let held = 0;
  const gh = await fakeGitHub(t, {
    // IssueAgent's labels are being set: the analyze step is under way. Kill its process there.
    onLabels: () => {
      held += 1;
      if (held > 1) return undefined;
      child.kill('SIGKILL');
      return 'hold';
    },
  });
  const options = {
    repo: s.repo,
    db: s.db,
    replay,
    github: { owner: 'acme', repo: 'calc', token: TOKEN, apiUrl: gh.url },
    approvers: ['alice'],
  };
  const first = await node(firstProcess(s), { PIPELINE_OPTIONS: JSON.stringify(options) }, (c) => (child = c));
  assert.equal(first.signal, 'SIGKILL', `the first process was killed: ${first.stderr}`);
  assert.equal(gh.labels.get(7), undefined, 'it died before the labels were set');

  const pipeline = await issueResolution(options);
  t.after(() => pipeline.close());
  const [stale] = await pipeline.list({ issue: 7 });
  assert.equal(stale.status, 'running', 'left running by the dead process');
  const taken = await pipeline.recover();
  assert.deepEqual(taken, [stale.id]);
  const run = await pipeline.wait(stale.id);
  assert.equal(run.status, 'suspended', run.error ?? '');
  assert.equal(run.gate.summary, 'review 93/100; test passed, lint passed, security passed');
  const done = await pipeline.approve(run.id, { as: 'alice' });
  assert.equal(done.status, 'succeeded', done.error ?? '');
  assert.equal(gh.pulls.length, 1, 'one PR');
  assert.equal(gh.pulls[0].title, TITLE);
  assert.ok(gh.labels.get(7).includes('state:reviewing'));
  checkBranch(s, git(s.origin, 'rev-parse', 'miyabi/issue-7'));
});

test('issueResolution refuses bad options, naming them', async (t) => {
  const s = setup(t);
  const bad = async (options, code, pattern) => {
    await assert.rejects(
      () => issueResolution({ repo: s.repo, db: s.db, replay, ...options }),
      (e) => e instanceof MiyabiError && e.code === code && pattern.test(e.message),
    );
  };
  await bad({ db: 'memory' }, 'INVALID_ARGUMENT', /`db`/);
  await bad({ repo: join(s.dir, 'nope') }, 'INVALID_ARGUMENT', /nope/);
  await bad({ commands: { tests: ['sh', 'test.sh'] } }, 'INVALID_ARGUMENT', /commands\.tests.*unknown command/);
  await bad({ commands: { test: 'sh test.sh' } }, 'INVALID_ARGUMENT', /commands\.test.*array of strings/);
  await bad({ sandbox: 'chroot' }, 'INVALID_ARGUMENT', /chroot/);
  await bad({ approvers: [] }, 'INVALID_ARGUMENT', /approvers/);
  await bad({ model: 'openai/gpt-4o' }, 'INVALID_ARGUMENT', /either `replay` or `model`/);
  await bad({ replay: { IssueAgent: 'not a list' } }, 'INVALID_ARGUMENT', /replay/);
  await bad({ github: { owner: 'acme', repo: 'calc', tokn: 'x' } }, 'INVALID_ARGUMENT', /tokn/);
  // Without GitHub or an issue file, an issue number cannot be read.
  const p = await issueResolution({ repo: s.repo, db: s.db, replay });
  t.after(() => p.close());
  await assert.rejects(() => p.start({ issue: 3 }), (e) => e instanceof MiyabiError && e.code === 'INVALID_ARGUMENT' && /issue #3/.test(e.message));
  // An issue given as data must fit the workflow's input schema.
  await assert.rejects(() => p.start({ issue: { number: 0, title: 'x' } }), (e) => e instanceof MiyabiError && e.code === 'VALIDATION');
});
