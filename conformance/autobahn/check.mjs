// Compares an Autobahn-style index.json with the expected results kept in the repository.
// Usage: node check.mjs <index.json> <expected.json> [--write]
import { readFileSync, writeFileSync } from 'node:fs'

const [indexPath, expectedPath, flag] = process.argv.slice(2)
const index = JSON.parse(readFileSync(indexPath, 'utf8'))
const agents = Object.keys(index)
if (agents.length !== 1) throw new Error(`expected one agent in ${indexPath}, got ${agents.join(', ')}`)
const byCase = index[agents[0]]
const order = (id) => id.split('.').map(Number)
const ids = Object.keys(byCase).sort((a, b) => {
  const x = order(a)
  const y = order(b)
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0)
  return 0
})
const actual = Object.fromEntries(ids.map((id) => [id, `${byCase[id].behavior}/${byCase[id].behaviorClose}`]))

if (flag === '--write') {
  const old = (() => {
    try {
      return JSON.parse(readFileSync(expectedPath, 'utf8'))
    } catch {
      return {}
    }
  })()
  writeFileSync(expectedPath, `${JSON.stringify({ notes: old.notes ?? {}, results: actual }, null, 1)}\n`)
  console.log(`wrote ${ids.length} expected results to ${expectedPath}`)
  process.exit(0)
}

const expected = JSON.parse(readFileSync(expectedPath, 'utf8')).results
const problems = []
for (const [id, want] of Object.entries(expected)) {
  if (actual[id] !== want) problems.push(`${id}: expected ${want}, got ${actual[id] ?? 'nothing'}`)
}
for (const id of ids) if (!(id in expected)) problems.push(`${id}: not in the expected results (${actual[id]})`)
const summary = {}
for (const v of Object.values(actual)) summary[v] = (summary[v] ?? 0) + 1
console.log(`${indexPath}: ${ids.length} cases`, summary)
if (problems.length) {
  console.error(problems.join('\n'))
  process.exit(1)
}
