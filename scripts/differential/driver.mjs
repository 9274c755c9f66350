// Differential testing: kmsxacct's policy engine (`explain --batch`) against an independent
// evaluator, @cloud-copilot/iam-simulate, on seeded random KMS requests and policies.
//
// usage: node driver.mjs --binary PATH [--cases N] [--seed S] [--repeat R] [--json OUT]
// For speed, each engine decides the N cases R times over (default 5) in one process.
// Exit 0 when every disagreement is explained by a rule of the known-differences file's list
// (KNOWN below, documented in tests/differential-known.md); 1 otherwise.

import { spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runSimulation } from '@cloud-copilot/iam-simulate'

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), [])
)
const N = Number(args.cases ?? 10000)
const SEED = Number(args.seed ?? 1)
const REPEAT = Number(args.repeat ?? 5)
const BINARY = args.binary

// --- seeded randomness (mulberry32) ---
function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const R = rng(SEED)
const pick = (xs) => xs[Math.floor(R() * xs.length)]
const chance = (p) => R() < p
const some = (xs, max) => xs.filter(() => chance(max / xs.length))

// An account root has every permission in its own account.
const rootPolicy = { name: 'account-root', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } }

// --- the world ---
const OWNER = '111111111111'
const OTHER = '222222222222'
const REGION = 'us-east-1'
const KEY = `arn:aws:kms:${REGION}:${OWNER}:key/1234abcd-12ab-34cd-56ef-1234567890ab`
const ALIASES = ['alias/data', 'alias/data/retired/1234abcd', 'alias/other', 'alias/team/data']
const ORG = 'o-abc123defg'
const ACTIONS = [
  ['kms:Encrypt', 5], ['kms:Decrypt', 5], ['kms:GenerateDataKey', 2], ['kms:DescribeKey', 2],
  ['kms:ReEncryptFrom', 1], ['kms:CreateGrant', 1], ['kms:PutKeyPolicy', 1], ['kms:ScheduleKeyDeletion', 1]
]
const weighted = (pairs) => {
  const total = pairs.reduce((s, [, w]) => s + w, 0)
  let r = R() * total
  for (const [v, w] of pairs) if ((r -= w) < 0) return v
  return pairs[0][0]
}

function caller() {
  const account = chance(0.7) ? OTHER : OWNER
  const kind = weighted([['role', 6], ['user', 2], ['root', 1]])
  const principal =
    kind === 'role' ? `arn:aws:sts::${account}:assumed-role/app/session`
      : kind === 'user' ? `arn:aws:iam::${account}:user/dev`
        : `arn:aws:iam::${account}:root`
  const principalArn = kind === 'role' ? `arn:aws:iam::${account}:role/app` : principal
  return { account, kind, principal, principalArn }
}

function actionPattern(action) {
  return weighted([[action, 5], ['kms:*', 2], [action.replace(/[A-Z][a-z]+$/, '*'), 1], ['kms:Encrypt', 1], ['kms:Decrypt', 1]])
}

// Conditions on the keys kmsxacct models, with every operator family and set qualifier.
function condition(features, forKeyPolicy) {
  const kind = weighted([
    ['resource-aliases', forKeyPolicy ? 0 : 4], ['request-alias', 3], ['caller-account', 2], ['org', 1],
    ['context', 1], ['null', 1]
  ])
  features.add(`condition:${kind}`)
  const alias = () => pick(['alias/data', 'alias/data*', 'alias/*', 'alias/other', 'alias/data/retired/*', 'alias/Data'])
  switch (kind) {
    case 'resource-aliases': {
      const op = pick(['ForAnyValue:StringLike', 'ForAnyValue:StringEquals', 'ForAllValues:StringLike', 'ForAnyValue:StringNotLike', 'ForAnyValue:StringEqualsIgnoreCase'])
      features.add(`op:${op}`)
      return { [op]: { 'kms:ResourceAliases': chance(0.5) ? alias() : [alias(), alias()] } }
    }
    case 'request-alias': {
      const op = pick(['StringEquals', 'StringLike', 'StringNotEquals', 'StringNotLike', 'StringEqualsIfExists', 'StringLikeIfExists'])
      features.add(`op:${op}`)
      return { [op]: { 'kms:RequestAlias': alias() } }
    }
    case 'caller-account': {
      const op = pick(['StringEquals', 'StringNotEquals'])
      features.add(`op:${op}`)
      return { [op]: { 'kms:CallerAccount': pick([OWNER, OTHER]) } }
    }
    case 'org': {
      const op = pick(['StringEquals', 'StringEqualsIfExists'])
      features.add(`op:${op}`)
      return { [op]: { 'aws:PrincipalOrgID': pick([ORG, 'o-zzzzzzzzzz']) } }
    }
    case 'context':
      features.add('op:StringEquals')
      return { StringEquals: { 'kms:EncryptionContext:app': pick(['billing', 'other']) } }
    default:
      features.add('op:Null')
      return { Null: { 'kms:RequestAlias': pick(['true', 'false']) } }
  }
}

function identityStatement(action, features) {
  const deny = chance(0.12)
  const resource = weighted([
    [KEY, 2], [`arn:aws:kms:${REGION}:${OWNER}:key/*`, 4], [`arn:aws:kms:${REGION}:${OWNER}:alias/data`, 2], ['*', 2],
    [`arn:aws:kms:${REGION}:333333333333:key/*`, 1]
  ])
  features.add(deny ? 'identity:deny' : 'identity:allow')
  features.add(`identity-resource:${resource === '*' ? 'star' : resource.includes(':alias/') ? 'alias-arn' : resource.endsWith('key/*') ? 'key-star' : 'key-arn'}`)
  const s = { Effect: deny ? 'Deny' : 'Allow' }
  if (chance(0.08)) {
    features.add('identity:not-action')
    s.NotAction = pick(['kms:Encrypt', 'kms:Create*', 's3:*'])
  } else s.Action = actionPattern(action)
  if (chance(0.06)) {
    features.add('identity:not-resource')
    s.NotResource = `arn:aws:kms:${REGION}:333333333333:key/*`
  } else s.Resource = resource
  if (chance(0.55)) s.Condition = condition(features, false)
  return s
}

function keyPolicy(c, action, features) {
  const statements = []
  if (chance(0.85)) {
    features.add('key-policy:root-delegation')
    statements.push({ Sid: 'Root', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${OWNER}:root` }, Action: 'kms:*', Resource: '*' })
  }
  if (chance(0.75)) {
    const who = weighted([
      [`arn:aws:iam::${OTHER}:root`, 4], [OTHER, 1], [`arn:aws:iam::${c.account}:role/app`, 2],
      [`arn:aws:iam::${OTHER}:role/other`, 1], ['*', 1]
    ])
    features.add(`key-policy:principal-${who === '*' ? 'star' : who.includes(':role/') ? 'role' : 'account'}`)
    const s = { Sid: 'Use', Effect: 'Allow', Principal: who === '*' ? '*' : { AWS: who }, Action: actionPattern(action), Resource: '*' }
    if (who === '*' || chance(0.3)) s.Condition = condition(features, true)
    statements.push(s)
  }
  if (chance(0.1)) {
    features.add('key-policy:deny')
    statements.push({ Sid: 'Guard', Effect: 'Deny', Principal: { AWS: `arn:aws:iam::${OTHER}:root` }, Action: actionPattern(action), Resource: '*', Condition: condition(features, true) })
  }
  return { Version: '2012-10-17', Statement: statements }
}

function generate(i) {
  const features = new Set()
  const c = caller()
  features.add(`caller:${c.kind}`)
  features.add(c.account === OWNER ? 'same-account' : 'cross-account')
  const action = weighted(ACTIONS)
  features.add(`action:${action}`)
  const aliases = some(ALIASES, 1.5)
  features.add(`aliases:${aliases.length}`)
  const requestAlias = chance(0.6) ? pick(['alias/data', 'alias/other', 'alias/team/data']) : null
  if (requestAlias) features.add('request-alias')
  // An account root has every permission in its own account: both engines get that as its
  // identity policy (IAM user guide, "AWS account root user").
  const identity = c.kind === 'root' ? [rootPolicy.policy] : Array.from({ length: weighted([[0, 1], [1, 5], [2, 2]]) }, () => ({
    Version: '2012-10-17',
    Statement: Array.from({ length: weighted([[1, 4], [2, 2]]) }, () => identityStatement(action, features))
  }))
  const org = chance(0.7) ? ORG : null
  const context = {}
  if (org) context['aws:PrincipalOrgID'] = org
  if (chance(0.5)) context['kms:EncryptionContext:app'] = pick(['billing', 'other'])
  return {
    id: i, features: [...features], caller: c,
    line: {
      id: i, principal: c.principal, action, key: KEY, key_aliases: aliases,
      request_alias: requestAlias, context, key_policy: keyPolicy(c, action, features), identity_policies: identity
    }
  }
}

// --- the two engines ---
// kmsxacct runs as a user runs it on a matrix: `explain --batch CASES > ANSWERS`. The clock
// covers that process alone (start, read, decide, write, exit); writing the cases before and
// reading the answers after are the driver's work, as building iam-simulate's requests is not
// timed either.
const scratch = mkdtempSync(join(tmpdir(), 'kmsxacct-differential-'))
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }))

// Before each timed run: a full garbage collection (node --expose-gc, as differential.sh runs
// it) and a pause while V8 finishes sweeping on its background threads, so that the driver's
// own garbage never takes a core from the engine being timed.
const pause = new Int32Array(new SharedArrayBuffer(4))
function settle() {
  globalThis.gc?.()
  Atomics.wait(pause, 0, 0, 100)
}

// Decides `lines` in one `explain --batch` process, into the file whose answers are read. With
// `repeat`, each line `repeat` times over, and first one more run that is timed, writing its
// answers to /dev/null (it still serialises and writes every one; the filesystem's writeback is
// not the engine's time); shrinking needs no timing and runs once. `consistent`: every copy of
// a line was answered as the first.
function kmsxacct(lines, repeat) {
  const input = lines.map((l) => JSON.stringify(l)).join('\n') + '\n'
  // DIFFERENTIAL_DUMP=FILE keeps the batch input, to profile or replay `explain --batch` alone.
  if (process.env.DIFFERENTIAL_DUMP) writeFileSync(process.env.DIFFERENTIAL_DUMP, input)
  const casesFile = join(scratch, 'cases.jsonl')
  const answersFile = join(scratch, 'answers.jsonl')
  writeFileSync(casesFile, input.repeat(repeat ?? 1))
  const decide = (to) => {
    const out = openSync(to, 'w')
    if (repeat) settle()
    const t0 = process.hrtime.bigint()
    const result = spawnSync(BINARY, ['explain', '--batch', casesFile], { stdio: ['ignore', out, 'pipe'] })
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    closeSync(out)
    if (result.error) throw result.error
    return ms
  }
  const ms = repeat ? decide('/dev/null') : null
  decide(answersFile)
  const all = readFileSync(answersFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
  const answers = all.slice(0, lines.length)
  const consistent = all.every((a, i) => a.decision === answers[i % lines.length]?.decision)
  return { answers, ms, consistent }
}

async function simulate(c) {
  const l = c.line
  const contextVariables = {
    'aws:PrincipalArn': c.caller.principalArn,
    'aws:PrincipalAccount': c.caller.account,
    'kms:CallerAccount': c.caller.account,
    'kms:ResourceAliases': l.key_aliases,
    ...l.context
  }
  if (l.request_alias) contextVariables['kms:RequestAlias'] = l.request_alias
  const sim = {
    identityPolicies: l.identity_policies.map((policy, i) => ({ name: `identity-${i}`, policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: l.key_policy,
    request: { action: l.action, principal: l.principal, resource: { accountId: OWNER, resource: l.key }, contextVariables }
  }
  const r = await runSimulation(sim, {})
  if (r.resultType === 'error') return { decision: 'error', detail: JSON.stringify(r.errors).slice(0, 300) }
  return { decision: { Allowed: 'allow', ExplicitlyDenied: 'explicit_deny', ImplicitlyDenied: 'implicit_deny' }[r.overallResult] }
}

// --- known differences, each settled by AWS documentation (tests/differential-known.md) ---
const CROSS_ACCOUNT = new Set(['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey', 'kms:DescribeKey', 'kms:ReEncryptFrom', 'kms:CreateGrant'])
const KNOWN = [
  {
    rule: 'kms-cross-account-operations',
    doc: 'KMS developer guide, "Allowing users in other accounts to use a KMS key": only cryptographic operations, DescribeKey, GetPublicKey and grant operations work across accounts.',
    applies: (c, ours, theirs) => c.caller.account !== OWNER && !CROSS_ACCOUNT.has(c.line.action) && ours === 'implicit_deny' && theirs === 'allow'
  },
  {
    rule: 'encryption-context-condition-keys',
    doc: 'KMS developer guide, "kms:EncryptionContext:context-key": the condition key holds the value of that encryption context pair in Encrypt, Decrypt and GenerateDataKey requests; iam-simulate 0.1.173 never matches it against the request context.',
    applies: (c) => JSON.stringify([c.line.key_policy, c.line.identity_policies]).includes('kms:EncryptionContext:')
  }
]

// --- shrinking: fewest statements, conditions and values that still disagree ---
function candidates(l) {
  const out = []
  const docs = [['key_policy', l.key_policy], ...l.identity_policies.map((d, i) => [`identity_policies.${i}`, d])]
  l.identity_policies.forEach((_, i) => out.push({ ...l, identity_policies: l.identity_policies.filter((_, j) => j !== i) }))
  for (const [path, doc] of docs) {
    const set = (d) => (path === 'key_policy' ? { ...l, key_policy: d } : { ...l, identity_policies: l.identity_policies.map((x, j) => (`identity_policies.${j}` === path ? d : x)) })
    doc.Statement.forEach((s, i) => {
      if (doc.Statement.length > 1) out.push(set({ ...doc, Statement: doc.Statement.filter((_, j) => j !== i) }))
      if (s.Condition) {
        const { Condition, ...rest } = s
        out.push(set({ ...doc, Statement: doc.Statement.map((x, j) => (j === i ? rest : x)) }))
      }
    })
  }
  l.key_aliases.forEach((_, i) => out.push({ ...l, key_aliases: l.key_aliases.filter((_, j) => j !== i) }))
  if (l.request_alias) out.push({ ...l, request_alias: null })
  for (const k of Object.keys(l.context)) {
    const { [k]: _, ...rest } = l.context
    out.push({ ...l, context: rest })
  }
  return out
}

async function shrink(c) {
  let current = c
  for (let round = 0; round < 50; round++) {
    const next = candidates(current.line).map((line, i) => ({ ...current, line: { ...line, id: i } }))
    if (!next.length) break
    const { answers } = kmsxacct(next.map((n) => n.line))
    let found = null
    for (const [i, n] of next.entries()) {
      const ours = answers[i]?.decision
      const theirs = (await simulate(n)).decision
      if (ours && theirs !== 'error' && ours !== theirs) { found = n; break }
    }
    if (!found) break
    current = found
  }
  return current
}

// --- run ---
// Each engine decides every case REPEAT times over in one process, timed as a whole: a matrix
// in one call is what `explain --batch` is for (not bound by process starts; kmsxacct's start
// is still counted, once), and it is how iam-simulate runs in the driver's own process. The
// first copy's answers are compared; every copy must answer alike.
const cases = Array.from({ length: N }, (_, i) => generate(i))
const ours = kmsxacct(cases.map((c) => c.line), REPEAT)
const theirs = []
settle()
const t0 = process.hrtime.bigint()
for (let pass = 0; pass < REPEAT; pass++) {
  for (const [i, c] of cases.entries()) {
    const answer = await simulate(c)
    if (pass === 0) theirs.push(answer)
    else if (answer.decision !== theirs[i].decision) throw new Error(`iam-simulate answered case ${i} two ways`)
  }
}
const theirsMs = Number(process.hrtime.bigint() - t0) / 1e6
if (!ours.consistent) throw new Error('kmsxacct answered a case two ways')

const byFeature = {}
const known = {}
const unexplained = []
let agree = 0, skipped = 0, errors = 0
for (const [i, c] of cases.entries()) {
  const a = ours.answers[i]
  const b = theirs[i]
  for (const f of c.features) byFeature[f] = (byFeature[f] ?? 0) + 1
  if (!a || a.error) { errors++; continue }
  if (b.decision === 'error') { skipped++; continue }
  if (a.decision === b.decision) { agree++; continue }
  const rule = KNOWN.find((k) => k.applies(c, a.decision, b.decision))
  if (rule) { known[rule.rule] = (known[rule.rule] ?? 0) + 1; continue }
  unexplained.push({ case: c, ours: a.decision, theirs: b.decision })
}
const compared = N - skipped - errors
const report = {
  cases: N, seed: SEED, compared, agree, skipped_by_the_simulator: skipped, kmsxacct_errors: errors,
  known_differences: known, unexplained: unexplained.length,
  decisions_timed: N * REPEAT,
  kmsxacct_ms: Math.round(ours.ms * 10) / 10,
  simulator_ms: Math.round(theirsMs),
  kmsxacct_cases_per_second: Math.round((N * REPEAT) / (ours.ms / 1000)),
  simulator_cases_per_second: Math.round((N * REPEAT) / (theirsMs / 1000)),
  features: Object.fromEntries(Object.entries(byFeature).sort())
}
report.speedup = Math.round((report.kmsxacct_cases_per_second / report.simulator_cases_per_second) * 10) / 10
console.log(`differential: ${N} cases (seed ${SEED}): ${agree} agree of ${compared} compared; ${Object.values(known).reduce((s, n) => s + n, 0)} known differences; ${unexplained.length} unexplained; ${skipped} the simulator refused; ${errors} kmsxacct errors`)
console.log(`differential: kmsxacct ${report.kmsxacct_cases_per_second} cases/s, iam-simulate ${report.simulator_cases_per_second} cases/s (${report.speedup}x; each decided the ${N} cases ${REPEAT} times over in one process)`)
for (const [rule, n] of Object.entries(known)) console.log(`  known  ${rule}: ${n}`)
for (const u of unexplained.slice(0, 5)) {
  const small = await shrink(u.case)
  const { answers } = kmsxacct([small.line])
  const again = await simulate(small)
  console.log(`  UNEXPLAINED case ${u.case.id}: kmsxacct ${answers[0]?.decision}, iam-simulate ${again.decision}; shrunk reproducer:`)
  console.log('  ' + JSON.stringify(small.line))
}
if (args.json) writeFileSync(args.json, JSON.stringify(report, null, 2))
process.exit(unexplained.length === 0 && errors === 0 ? 0 : 1)
