#!/usr/bin/env bash
# A session with the stock nats CLI against a running kvmesh store: put,
# get, list and a batch, with nothing but `nats` (no jq).
# NATS_URL picks the server (default nats://127.0.0.1:4222, what
# `kvmesh dev` listens on); NATS is the nats binary (default: nats).
set -euo pipefail
NATS=${NATS:-nats}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
req() { "$NATS" req --timeout 5s "$@"; }
# header NAME ARGS...: the value of reply header NAME (nats req prints
# headers on stderr, after a timestamp).
header() {
	local name=$1
	shift
	req "$@" 2>&1 >/dev/null | sed -nE "s/^[0-9:]+ $name: //p"
}

echo '# put two users, one key with a space (in the Kvmesh-Key header)'
req kvmesh.kv.put.user.1 '{"name":"ada"}' >/dev/null
req kvmesh.kv.put.user.2 '{"name":"grace"}' -H Kvmesh-W:all >/dev/null
req kvmesh.kv.put 'a value' -H 'Kvmesh-Key:user 3' >/dev/null

echo '# get user.1: the value alone (--raw), then with its headers'
req kvmesh.kv.get.user.1 '' --raw
echo "Kvmesh-Siblings: $(header Kvmesh-Siblings kvmesh.kv.get.user.1 '')"

echo '# list the keys starting with "user" (JSON: keys and, if more, a cursor)'
req kvmesh.kv.keys.user '' --raw

echo '# list "user." one at a time: the prefix in a header, the cursor of the page before'
page=$(req kvmesh.kv.keys '' --raw -H Kvmesh-Prefix:user. -H Kvmesh-Limit:1)
echo "$page"
cursor=$(printf '%s' "$page" | sed -n 's/.*"next":"\([^"]*\)".*/\1/p')
req kvmesh.kv.keys '' --raw -H Kvmesh-Prefix:user. -H Kvmesh-Limit:1 -H "Kvmesh-Cursor:$cursor"

echo '# a batch: a put, a get and a delete in one request'
req kvmesh.kv.batch '{"ops":[{"op":"put","key":"user.4","value":"linus"},{"op":"get","key":"user.2"},{"op":"del","key":"user.1"}]}' --raw |
	sed 's/"context":"[^"]*"/"context":"..."/g'

echo '# user.1 is gone: 404'
echo "Nats-Service-Error-Code: $(header Nats-Service-Error-Code kvmesh.kv.get.user.1 '')"
