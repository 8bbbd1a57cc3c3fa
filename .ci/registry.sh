#!/usr/bin/env bash
# The user's path, proved here: publish the built linux-x64-gnu addon package and the main package
# (staged by scripts/stage-release.mjs) to a local npm registry (verdaccio 6.8.0 on 127.0.0.1, no
# uplinks), then in a fresh folder, with cargo and rustc off PATH, `npm install hypersock` from it
# and run an ESM script, a CommonJS script and a TypeScript file (tsc --strict, module nodenext,
# skipLibCheck false) that serve, fetch and echo over WebSocket. The registry is stopped afterwards.
# publint and arethetypeswrong check the main package before it is published.
# Needs a build (npm run build) first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
pid=''
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "registry: installing verdaccio 6.8.0"
mkdir -p "$work/verdaccio"
cat >"$work/verdaccio/package.json" <<'JSON'
{ "name": "local-registry", "version": "1.0.0", "private": true,
  "dependencies": { "verdaccio": "6.8.0" },
  "overrides": { "node-fetch": "2.7.0" } }
JSON
(cd "$work/verdaccio" && npm install --no-audit --no-fund --loglevel=error >/dev/null)

port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
registry="http://127.0.0.1:$port/"
cat >"$work/config.yaml" <<YAML
storage: $work/storage
auth:
  htpasswd:
    file: $work/htpasswd
    max_users: 10
uplinks: {}
packages:
  '**':
    access: \$all
    publish: \$authenticated
listen: 127.0.0.1:$port
log: { type: stdout, format: pretty, level: warn }
YAML
"$work/verdaccio/node_modules/.bin/verdaccio" --config "$work/config.yaml" >"$work/verdaccio.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fs "${registry}-/ping" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "${registry}-/ping" >/dev/null || { cat "$work/verdaccio.log"; echo "registry: verdaccio did not start"; exit 1; }

token=$(curl -fs -X PUT -H 'content-type: application/json' \
  -d '{"name":"ci","password":"ci-password"}' "${registry}-/user/org.couchdb.user:ci" |
  node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).token))")
npmrc="$work/npmrc"
printf 'registry=%s\n//127.0.0.1:%s/:_authToken=%s\n' "$registry" "$port" "$token" >"$npmrc"

echo "registry: staging and publishing"
node scripts/stage-release.mjs --out "$work/stage"
echo "registry: publint and arethetypeswrong on the main package"
(cd "$work/stage/hypersock" && "$root/node_modules/.bin/publint" --strict && "$root/node_modules/.bin/attw" --pack . --no-color)
for dir in "$work"/stage/*/; do
  [ "$(basename "$dir")" = hypersock ] && continue
  (cd "$dir" && npm publish --userconfig "$npmrc" --ignore-scripts --loglevel=error)
done
(cd "$work/stage/hypersock" && npm publish --userconfig "$npmrc" --ignore-scripts --loglevel=error)

echo "registry: npm install hypersock in a fresh folder, without cargo or rustc"
app="$work/app"
mkdir -p "$app"
cp .ci/smoke/smoke.mjs .ci/smoke/smoke.cjs .ci/smoke/smoke.mts "$app/"
printf '{ "name": "app", "version": "1.0.0", "private": true, "type": "module" }\n' >"$app/package.json"
nocargo=$(printf '%s' "$PATH" | tr ':' '\n' | while read -r d; do
  [ -n "$d" ] && [ ! -e "$d/cargo" ] && [ ! -e "$d/rustc" ] && printf '%s:' "$d"
done)
nocargo=${nocargo%:}
start=$(date +%s%N)
(cd "$app" && env PATH="$nocargo" sh -c 'if command -v cargo || command -v rustc; then echo "cargo still on PATH"; exit 1; fi; npm install hypersock --userconfig "$0" --no-audit --no-fund --loglevel=error' "$npmrc")
end=$(date +%s%N)
echo "registry: npm install hypersock took $(( (end - start) / 1000000 )) ms"
test -f "$app/node_modules/hypersock-linux-x64-gnu/hypersock.linux-x64-gnu.node"
if ls "$app"/node_modules/hypersock/*.node >/dev/null 2>&1; then echo "the main package carries an addon"; exit 1; fi
# The README's links to docs/*.md resolve inside the installed package too.
for doc in $(grep -o 'docs/[a-z0-9-]*\.md' README.md | sort -u); do
  test -f "$app/node_modules/hypersock/$doc" || { echo "the package lacks $doc, which the README links to"; exit 1; }
done

cd "$app"
env PATH="$nocargo" node smoke.mjs
mv smoke.cjs smoke-cjs.cjs && env PATH="$nocargo" node smoke-cjs.cjs
cat >tsconfig.json <<JSON
{ "compilerOptions": { "strict": true, "module": "nodenext", "moduleResolution": "nodenext",
    "target": "es2022", "skipLibCheck": false, "outDir": "out", "types": ["node"],
    "typeRoots": ["$root/node_modules/@types"] },
  "files": ["smoke.mts"] }
JSON
"$root/node_modules/.bin/tsc" -p tsconfig.json
env PATH="$nocargo" node out/smoke.mjs
# The command from the installed package: its version, and a request to the registry's ping.
installed=$(env PATH="$nocargo" ./node_modules/.bin/hypersock --version)
[ "$installed" = "$(node -p "require('$root/package.json').version")" ] || { echo "hypersock --version said $installed"; exit 1; }
env PATH="$nocargo" ./node_modules/.bin/hypersock get "http://127.0.0.1:$port/-/ping" --check-status >/dev/null
# ... and its file server, asked for a file by its HTTP client.
env PATH="$nocargo" ./node_modules/.bin/hypersock serve . --port 0 --quiet >serve.out 2>serve.err &
serve_pid=$!
for _ in $(seq 1 200); do grep -q serving serve.out && break; sleep 0.05; done
served=$(sed -n 's/^serving .* at \(http[^ ]*\).*/\1/p' serve.out)
[ -n "$served" ] || { echo "hypersock serve did not start:"; cat serve.out serve.err; exit 1; }
env PATH="$nocargo" ./node_modules/.bin/hypersock get "${served}package.json" --check-status | grep -q '"name"'
kill "$serve_pid"; wait "$serve_pid" || true
echo "registry: ok"
