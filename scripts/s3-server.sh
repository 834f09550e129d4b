#!/usr/bin/env bash
# The S3 server the tests run on loopback: s3rver (npm), pinned by scripts/s3rver/package-lock.json.
#   scripts/s3-server.sh install          install it into .tools/s3rver (idempotent; Node.js from apt if missing)
#   scripts/s3-server.sh run DIR [PORT]   serve DIR on 127.0.0.1:PORT (default 4568) in the foreground
# Credentials are s3rver's fixed pair: AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="$repo/.tools/s3rver"
bin="$dest/node_modules/s3rver/bin/s3rver.js"

install() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: nodejs npm"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  mkdir -p "$dest"
  # Reinstall only when the pinned lock file changed since the last install.
  if [ -f "$bin" ] && cmp -s "$repo/scripts/s3rver/package-lock.json" "$dest/package-lock.json"; then
    return
  fi
  cp "$repo/scripts/s3rver/package.json" "$repo/scripts/s3rver/package-lock.json" "$dest/"
  npm ci --prefix "$dest" --no-audit --no-fund --loglevel=error
}

case "${1:-}" in
  install) install ;;
  run)
    [ -f "$bin" ] || { echo "s3rver is not installed: run scripts/s3-server.sh install" >&2; exit 1; }
    mkdir -p "${2:?usage: $0 run DIR [PORT]}"
    # s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its legacy provider.
    exec node --openssl-legacy-provider "$bin" -d "$2" -a 127.0.0.1 -p "${3:-4568}" ;;
  *) echo "usage: $0 install | run DIR [PORT]" >&2; exit 2 ;;
esac
