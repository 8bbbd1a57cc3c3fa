#!/usr/bin/env node
// Stages what a release publishes, into --out (default release/):
//   <out>/<platform>/   one npm package per built addon (npm/<platform> plus its .node), and
//   <out>/hypersock/    the main package: dist/, the loader, typings, README, LICENSE, and a
//                       package.json that lists every platform package in optionalDependencies at
//                       the same version, without the scripts that build from source.
// Addons are taken from --artifacts (default: the repository root), named hypersock.<platform>.node.
// Publish the platform packages first, then the main one. Used by the release workflow and by
// .ci/registry.sh, which installs the result from a local registry.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const { values } = parseArgs({ options: { out: { type: 'string' }, artifacts: { type: 'string' } } })
const out = values.out ?? join(root, 'release')
const artifacts = values.artifacts ?? root
const read = (file) => JSON.parse(readFileSync(file, 'utf8'))
const main = read(join(root, 'package.json'))

rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })

const optional = {}
const staged = []
for (const dir of readdirSync(join(root, 'npm')).sort()) {
  const pkg = read(join(root, 'npm', dir, 'package.json'))
  if (pkg.version !== main.version)
    throw new Error(`npm/${dir} is at ${pkg.version}, the package at ${main.version}: run scripts/set-version.mjs`)
  optional[pkg.name] = main.version
  const addon = join(artifacts, pkg.main)
  if (!existsSync(addon)) continue
  cpSync(join(root, 'npm', dir), join(out, dir), { recursive: true })
  cpSync(addon, join(out, dir, pkg.main))
  staged.push(pkg.name)
}
if (staged.length === 0) throw new Error(`no built addon (hypersock.<platform>.node) in ${artifacts}`)

const dest = join(out, 'hypersock')
/** A `files` entry, with a `dir/*.ext` pattern expanded to the files it names. */
const expand = (entry) => {
  const glob = /^(.+)\/\*(\.[A-Za-z0-9]+)$/.exec(entry)
  if (!glob) return [entry]
  const [, dir, ext] = glob
  return readdirSync(join(root, dir))
    .filter((f) => f.endsWith(ext))
    .map((f) => `${dir}/${f}`)
}
for (const entry of [...main.files.flatMap(expand), 'README.md', 'LICENSE']) {
  if (!existsSync(join(root, entry))) throw new Error(`${entry} is missing: build first (npm run build)`)
  cpSync(join(root, entry), join(dest, entry), { recursive: true })
}
const published = { ...main, optionalDependencies: optional }
// Users install prebuilt addons; nothing builds on their machines.
published.scripts = {}
delete published.devDependencies
writeFileSync(join(dest, 'package.json'), `${JSON.stringify(published, null, 2)}\n`)
console.log(`staged ${main.name}@${main.version} and ${staged.join(', ')} in ${out}`)
