#!/bin/sh
# Runs inside a node:20 container (Debian or Alpine) with the repository mounted at the working
# directory and the downloaded hypersock.$PLATFORM.node beside binding.cjs: checks that the loader
# picks that very file in this libc, then runs the test suite against it.
set -eu

# shellcheck disable=SC2016 # the ${...} below are JavaScript template literals
node -e '
const binding = require("./binding.cjs")
const file = require.resolve(`./hypersock.${process.env.PLATFORM}.node`)
if (!require.cache[file]) throw new Error(`binding.cjs did not load ${file}`)
console.log(`loaded ${file}: ${Object.keys(binding).length} exports`)
'

# The tests call curl, which neither image ships.
if [ -f /etc/alpine-release ]; then
  apk add --no-cache curl
else
  apt-get update -qq && apt-get install -y -qq --no-install-recommends curl ca-certificates
fi
# --ignore-scripts: `prepare` would rebuild the addon over the artifact under test.
npm ci --ignore-scripts
npm run build:ts
npx vitest run
