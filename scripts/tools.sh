#!/usr/bin/env bash
# Install the contract validators the tests run that are not Python packages, into .tools/
# (gitignored; nothing global): the official AsyncAPI CLI (npm), pinned, once per version.
# promtool comes from Debian's `prometheus` and node/npm from `nodejs`/`npm`
# (scripts/system-deps.sh test); schemathesis is a pip dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."
ASYNCAPI_CLI_VERSION=4.1.1  # the newest line whose engines accept Debian 12's Node 18
dir=.tools/asyncapi
stamp="$dir/.installed-$ASYNCAPI_CLI_VERSION"
[ -f "$stamp" ] && exit 0
command -v npm >/dev/null 2>&1 || {
  echo "storegw: npm is missing; run: bash scripts/system-deps.sh test" >&2
  exit 1
}
echo "storegw: installing @asyncapi/cli@$ASYNCAPI_CLI_VERSION into $dir (once, ~2-4 min)"
rm -rf "$dir"
mkdir -p "$dir"
echo '{}' >"$dir/package.json"
npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error \
  "@asyncapi/cli@$ASYNCAPI_CLI_VERSION"
# The CLI sends usage analytics unless its config file says no (tests point it here).
echo '{"analyticsEnabled":"false","infoMessageShown":"true"}' >"$dir/analytics.json"
touch "$stamp"
