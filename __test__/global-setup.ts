// Runs once before the suites: makes sure the real peers the tests talk to are installed. As root
// (CI, a fresh container) the missing Debian packages are installed with apt-get; otherwise the run
// stops at once, naming them and the command that installs them.
import { spawnSync } from 'node:child_process'

/** A command the tests run, and the Debian package that provides it. */
const PEERS: Array<{ check: () => boolean; what: string; pkg: string }> = [
  { what: 'curl', pkg: 'curl', check: () => has('curl', ['--version']) },
  { what: 'nghttpd', pkg: 'nghttp2-server', check: () => has('nghttpd', ['--version']) },
  { what: 'zstd', pkg: 'zstd', check: () => has('zstd', ['--version']) },
  { what: 'redis-server', pkg: 'redis-server', check: () => has('redis-server', ['--version']) },
  { what: '/usr/bin/chromium', pkg: 'chromium', check: () => has('/usr/bin/chromium', ['--version']) },
  {
    what: "Python's websockets module",
    pkg: 'python3-websockets',
    check: () => has('/usr/bin/python3', ['-c', 'import websockets']),
  },
]

function has(command: string, args: string[]): boolean {
  const r = spawnSync(command, args, { stdio: 'ignore' })
  return r.error === undefined && r.status === 0
}

export default function setup(): void {
  const missing = PEERS.filter((p) => !p.check())
  if (missing.length === 0) return
  const pkgs = missing.map((p) => p.pkg)
  const names = missing.map((p) => p.what).join(', ')
  if (process.getuid?.() !== 0) {
    throw new Error(
      `the tests need ${names}: install them with \`sudo apt-get install -y ${pkgs.join(' ')}\` (Debian/Ubuntu)`,
    )
  }
  console.error(`npm test: installing ${pkgs.join(', ')} with apt-get (needed by the tests: ${names})`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', ...pkgs],
  ]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env })
    if (r.status !== 0) throw new Error(`\`apt-get ${args.join(' ')}\` failed: install ${pkgs.join(' ')} and run again`)
  }
  const still = missing.filter((p) => !p.check())
  if (still.length > 0) throw new Error(`still missing after apt-get: ${still.map((p) => p.what).join(', ')}`)
}
