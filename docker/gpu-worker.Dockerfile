# The GPU worker: a Celery worker on the gpu queue plus `textbook model-server`, the long-lived
# process that loads each model once and runs the model stages the worker's tasks hand it.
#
# Same slim Airflow base as docker/airflow.Dockerfile (see there why slim), with CUDA torch,
# whisperx and faster-whisper. No CUDA base image is needed: the CUDA libraries come as pip wheels
# (docker/requirements-gpu.txt) and the NVIDIA container runtime adds the driver.
#
# Build from the repository root: docker build -f docker/gpu-worker.Dockerfile .
FROM apache/airflow:slim-3.3.2-python3.11

USER root
# ffmpeg: audio extraction (whisperx and faster-whisper decode through it); tesseract: OCR, so
# every pipeline stage can run here as well.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ffmpeg tesseract-ocr tesseract-ocr-eng \
 && apt-get autoremove -yqq --purge \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
# /opt/textbook: our requirements and package sources; textbook-data: the pipeline's local scratch
# (TEXTBOOK_DATA_ROOT); model-cache: downloaded models (a named volume). The last two are
# writable by any AIRFLOW_UID in group 0 too.
RUN mkdir -p /opt/textbook /opt/airflow/textbook-data /opt/airflow/model-cache \
 && chown airflow:0 /opt/textbook /opt/airflow/textbook-data /opt/airflow/model-cache \
 && chmod 2775 /opt/airflow/textbook-data /opt/airflow/model-cache
USER airflow

COPY --chown=airflow:0 requirements.txt docker/requirements-gpu.txt /opt/textbook/
RUN pinned="$(sed -n 's/^apache-airflow==//p' /opt/textbook/requirements.txt)" \
 && [ "${AIRFLOW_VERSION}" = "${pinned}" ] \
 || { echo "base image has Airflow ${AIRFLOW_VERSION}, requirements.txt pins ${pinned}" >&2; exit 1; }
# requirements.txt without its (CPU) torch pin, plus requirements-gpu.txt: CUDA torch 2.8.0,
# torchaudio, whisperx and what they need, resolved together with the rest.
RUN grep -v '^torch==' /opt/textbook/requirements.txt > /opt/textbook/requirements-shared.txt \
 && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
      -r /opt/textbook/requirements-shared.txt -r /opt/textbook/requirements-gpu.txt

# Our package without dependencies. No `pip check` here: pyproject.toml declares torch>=2.13 (the
# CPU stack), which this image deliberately replaces with 2.8.0 for whisperx.
COPY --chown=airflow:0 pyproject.toml README.md /opt/textbook/src/
COPY --chown=airflow:0 textbook /opt/textbook/src/textbook
RUN pip install --no-cache-dir --no-deps /opt/textbook/src

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 docker/gpu-worker-entrypoint.sh /opt/textbook/gpu-worker-entrypoint.sh

# Model downloads (Whisper, alignment models, NLTK data) land on the model-cache volume.
ENV HF_HOME=/opt/airflow/model-cache/huggingface \
    TORCH_HOME=/opt/airflow/model-cache/torch \
    NLTK_DATA=/opt/airflow/model-cache/nltk_data
ENTRYPOINT ["/usr/bin/dumb-init", "--", "bash", "/opt/textbook/gpu-worker-entrypoint.sh"]
CMD ["celery", "worker", "--queues", "gpu"]
