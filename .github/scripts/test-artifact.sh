#!/bin/sh
# Runs inside a node:20 container (Debian or Alpine) with the repository mounted at the working
# directory and the downloaded hypersock.$PLATFORM.node beside binding.cjs: checks that the loader
# picks that very file in this libc, then smoke-tests it.
set -eu

# shellcheck disable=SC2016 # the ${...} below are JavaScript template literals
node -e '
const binding = require("./binding.cjs")
const file = require.resolve(`./hypersock.${process.env.PLATFORM}.node`)
if (!require.cache[file]) throw new Error(`binding.cjs did not load ${file}`)
console.log(`loaded ${file}: ${Object.keys(binding).length} exports`)
'

# A smoke test of the artifact in this libc (serve, fetch, WebSocket echo), not the peer suite:
# the bare images have none of the peers (Chromium, Redis, nghttpd, Python websockets) it needs.
npm ci --ignore-scripts
npm run build:ts
mkdir -p node_modules/hypersock
cp -r dist binding.cjs binding.d.ts package.json "hypersock.$PLATFORM.node" node_modules/hypersock/
node .ci/smoke/smoke.mjs
node .ci/smoke/smoke.cjs
