// Fails when modules import each other in a cycle: the Rust modules of crates/core (one per file,
// through `crate::`/`super::` paths) and the TypeScript modules of src-ts (through relative
// imports). Run by .ci/run; `node scripts/check-cycles.mjs` prints the graph with --verbose.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const verbose = process.argv.includes('--verbose')

function files(dir, ext) {
  const out = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...files(path, ext))
    else if (name.endsWith(ext)) out.push(path)
  }
  return out
}

/** The module graph of a Rust crate: `a::b` -> the modules its code names (tests excluded). */
function rustGraph(src) {
  const modules = new Map()
  for (const path of files(src, '.rs')) {
    const parts = relative(src, path).slice(0, -3).split('/')
    if (parts.at(-1) === 'mod') parts.pop()
    if (parts.length === 1 && parts[0] === 'lib') parts.pop()
    modules.set(parts.join('::') || 'crate', readFileSync(path, 'utf8'))
  }
  const graph = new Map()
  for (const [name, text] of modules) {
    const code = text.split(/#\[cfg\(test\)\]\s*mod tests/)[0]
    const deps = new Set()
    const resolve = (path) => {
      for (let k = path.length; k > 0; k--) {
        const candidate = path.slice(0, k).join('::')
        if (modules.has(candidate)) return candidate
      }
    }
    for (const [ref] of code.matchAll(/\b(?:crate|super)(?:::\w+)+/g)) {
      const segments = ref.split('::')
      const path =
        segments[0] === 'super' ? [...name.split('::').slice(0, -1), ...segments.slice(1)] : segments.slice(1)
      const dep = resolve(path)
      if (dep) deps.add(dep)
    }
    for (const [, list] of code.matchAll(/use crate::\{([^}]*)\}/g)) {
      for (const item of list.split(',')) {
        const dep = resolve([item.trim().split('::')[0]])
        if (dep) deps.add(dep)
      }
    }
    deps.delete(name)
    graph.set(name, deps)
  }
  return graph
}

/**
 * The import graph of the TypeScript sources. Imports of types only (`import type`, or every
 * name marked `type`) are left out: the compiler erases them, so they cannot form a cycle at
 * load time.
 */
function tsGraph(src) {
  const graph = new Map()
  for (const path of files(src, '.ts')) {
    const name = relative(src, path)
    const deps = new Set()
    const text = readFileSync(path, 'utf8')
    for (const [, clause, spec] of text.matchAll(/^(?:import|export)\s+([^;]*?)\s+from\s+'(\.\/[^']+)'/gms)) {
      const typeOnly =
        /^type\s/.test(clause) ||
        (/^\{[^}]*\}$/s.test(clause) &&
          clause
            .slice(1, -1)
            .split(',')
            .map((n) => n.trim())
            .filter(Boolean)
            .every((n) => n.startsWith('type ')))
      if (!typeOnly) deps.add(spec.slice(2).replace(/\.js$/, '.ts'))
    }
    graph.set(name, deps)
  }
  return graph
}

/** Strongly connected components with more than one member (Tarjan). */
function cycles(graph) {
  let index = 0
  const idx = new Map()
  const low = new Map()
  const stack = []
  const on = new Set()
  const found = []
  const visit = (v) => {
    idx.set(v, index)
    low.set(v, index++)
    stack.push(v)
    on.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v), low.get(w)))
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)))
    }
    if (low.get(v) === idx.get(v)) {
      const component = []
      let w
      do {
        w = stack.pop()
        on.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1) found.push(component.sort())
    }
  }
  for (const v of graph.keys()) if (!idx.has(v)) visit(v)
  return found
}

let failed = false
for (const [label, graph] of [
  ['crates/core', rustGraph(join(root, 'crates/core/src'))],
  ['crates/node', rustGraph(join(root, 'crates/node/src'))],
  ['src-ts', tsGraph(join(root, 'src-ts'))],
]) {
  if (verbose) for (const [k, v] of graph) console.log(`${label}: ${k} -> ${[...v].sort().join(', ')}`)
  for (const cycle of cycles(graph)) {
    failed = true
    console.error(`${label}: these modules import each other in a cycle: ${cycle.join(', ')}`)
  }
}
if (failed) process.exit(1)
console.log('check-cycles: no import cycle between modules')
