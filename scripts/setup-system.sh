#!/usr/bin/env bash
# Install the Debian tools the pipeline shells out to, only those missing (sudo when not root).
set -euo pipefail
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v tesseract >/dev/null || need+=(tesseract-ocr)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
for extra in "$@"; do
  case "$extra" in
    chromium) command -v chromium >/dev/null || need+=(chromium) ;;
    docker-compose) command -v docker-compose >/dev/null || need+=(docker-compose) ;;
    postgresql) command -v pg_ctlcluster >/dev/null || need+=(postgresql) ;;
    redis) command -v redis-server >/dev/null || need+=(redis-server) ;;
  esac
done
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
