#!/usr/bin/env bash
# GPU worker: `textbook model-server` next to Airflow's own entrypoint running the Celery worker.
#
# gpu-queue tasks send their videos to TEXTBOOK_WORKERS__MODEL_SERVER_URL, so the server listens
# there; with the variable empty no server starts and model stages run inside each task process.
# Either process ending stops the other and the container, so `restart: always` brings both back.
# docker stop's SIGTERM goes to the Celery worker first (its warm shutdown), then to the server.
set -uo pipefail

mkdir -p "${HF_HOME}" "${TORCH_HOME}" "${NLTK_DATA}"

# ctranslate2 (faster-whisper) dlopens CUDA 12 cuBLAS and cuDNN 9 by name; they are pip wheels here.
nvidia_libs="$(python - <<'EOF'
import importlib.util

paths = []
for name in ("nvidia.cublas.lib", "nvidia.cudnn.lib"):
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # no CUDA wheels: ctranslate2 then runs on the CPU only
        continue
    if spec is not None and spec.submodule_search_locations:
        paths.extend(spec.submodule_search_locations)
print(":".join(paths))
EOF
)"
export LD_LIBRARY_PATH="${nvidia_libs}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"

url="${TEXTBOOK_WORKERS__MODEL_SERVER_URL:-}"
if [ -z "${url}" ]; then
  exec /entrypoint "$@"
fi

if ! address="$(python - "${url}" <<'EOF'
import sys
from urllib.parse import urlsplit

url = urlsplit(sys.argv[1])
if url.scheme != "http" or not url.hostname or url.path not in ("", "/"):
    sys.exit(f"TEXTBOOK_WORKERS__MODEL_SERVER_URL={sys.argv[1]!r}: expected http://HOST:PORT")
print(url.hostname, url.port or 80)
EOF
)"; then
  exit 2
fi
read -r host port <<<"${address}"

textbook model-server --host "${host}" --port "${port}" &
server=$!
for _ in $(seq 300); do
  curl -fs -o /dev/null "${url%/}/health" && break
  if ! kill -0 "${server}" 2>/dev/null; then
    wait "${server}"
    echo "gpu-worker: textbook model-server exited with status $? before answering" >&2
    exit 1
  fi
  sleep 1
done
if ! curl -fsS -o /dev/null "${url%/}/health"; then
  echo "gpu-worker: textbook model-server did not answer ${url%/}/health within 300 s" >&2
  kill -TERM "${server}"
  exit 1
fi

stopping=0
worker=""
trap 'stopping=1; [ -n "${worker}" ] && kill -TERM "${worker}" 2>/dev/null' TERM INT
/entrypoint "$@" &
worker=$!

wait -n "${server}" "${worker}"
status=$?
if [ "${stopping}" = 0 ]; then
  echo "gpu-worker: $(kill -0 "${server}" 2>/dev/null && echo "Celery worker" || echo "model server") exited" \
       "with status ${status}; stopping the container" >&2
  kill -TERM "${worker}" 2>/dev/null
fi
while kill -0 "${worker}" 2>/dev/null; do
  wait "${worker}"
  status=$?
done
kill -TERM "${server}" 2>/dev/null
wait "${server}" 2>/dev/null
if [ "${stopping}" = 0 ] && [ "${status}" = 0 ]; then
  status=1
fi
exit "${status}"
