#!/usr/bin/env node
// Sets one version everywhere it is written: package.json (and its lockfile entry), every
// npm/<platform>/package.json and the Cargo workspace. Usage: node scripts/set-version.mjs 1.2.3
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const version = process.argv[2]
if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version ?? '')) {
  console.error('usage: node scripts/set-version.mjs <major.minor.patch[-pre]>')
  process.exit(2)
}
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const editJson = (file, edit) => {
  const json = JSON.parse(readFileSync(file, 'utf8'))
  edit(json)
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`)
}
editJson(join(root, 'package.json'), (p) => {
  p.version = version
})
editJson(join(root, 'package-lock.json'), (l) => {
  l.version = version
  l.packages[''].version = version
})
for (const dir of readdirSync(join(root, 'npm'))) {
  editJson(join(root, 'npm', dir, 'package.json'), (p) => {
    p.version = version
  })
}
const cargo = join(root, 'Cargo.toml')
const toml = readFileSync(cargo, 'utf8')
const next = toml.replace(/(\[workspace\.package\][^[]*?\nversion = )"[^"]*"/, `$1"${version}"`)
if (next === toml && !toml.includes(`version = "${version}"`))
  throw new Error('no [workspace.package] version in Cargo.toml')
writeFileSync(cargo, next)
console.log(
  `version ${version}: package.json, package-lock.json, npm/*/package.json, Cargo.toml (run cargo check to update Cargo.lock)`,
)
