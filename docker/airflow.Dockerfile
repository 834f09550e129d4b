# The image of every Airflow service in docker-compose.yaml except the GPU worker: api-server,
# scheduler, dag-processor, triggerer, the default-queue Celery worker and flower.
#
# Base: Airflow's *slim* image at the version requirements.txt pins. The regular image adds some
# thirty extras, and three of them co-install with our pins at no version apache-airflow[...]
# 3.3.2 allows: google and snowflake (our protobuf 7.36.2), aiobotocore (our botocore 1.44.5 and
# multidict 7.2.1). Installing requirements.txt over them would leave them broken, pip only
# warning. The slim image holds Airflow core alone; requirements.txt adds the providers we use
# (amazon, celery, postgres, redis) at versions resolved together with apache-airflow 3.3.2, and
# `pip check` below proves the result consistent.
#
# Build from the repository root: docker build -f docker/airflow.Dockerfile .
FROM apache/airflow:slim-3.3.2-python3.11

USER root
# ffmpeg: media probing, audio extraction and frame decoding; tesseract: OCR; espeak-ng: the
# demo course's narration (textbook demo).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ffmpeg tesseract-ocr tesseract-ocr-eng espeak-ng \
 && apt-get autoremove -yqq --purge \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
# /opt/textbook: our requirements and package sources; auth: the api-server's user file (a named
# volume); textbook-data: the pipeline's local scratch (TEXTBOOK_DATA_ROOT). The last two are
# writable by any AIRFLOW_UID in group 0 too.
RUN mkdir -p /opt/textbook /opt/airflow/auth /opt/airflow/textbook-data \
 && chown airflow:0 /opt/textbook /opt/airflow/auth /opt/airflow/textbook-data \
 && chmod 2775 /opt/airflow/auth /opt/airflow/textbook-data
USER airflow

COPY --chown=airflow:0 requirements.txt /opt/textbook/requirements.txt
# The base image and requirements.txt must agree on Airflow, or pip would silently swap it.
RUN pinned="$(sed -n 's/^apache-airflow==//p' /opt/textbook/requirements.txt)" \
 && [ "${AIRFLOW_VERSION}" = "${pinned}" ] \
 || { echo "base image has Airflow ${AIRFLOW_VERSION}, requirements.txt pins ${pinned}" >&2; exit 1; }
# torch first, from PyTorch's CPU index (the PyPI wheel pulls gigabytes of CUDA libraries), at the
# version requirements.txt pins; its dependencies come from requirements.txt below.
RUN pip install --no-cache-dir --no-deps --index-url https://download.pytorch.org/whl/cpu \
      "$(grep '^torch==' /opt/textbook/requirements.txt)"
# apache-airflow==version keeps pip from moving Airflow (Airflow's advice for adding packages).
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/textbook/requirements.txt

# Our package without dependencies: requirements.txt already holds them, pinned.
COPY --chown=airflow:0 pyproject.toml README.md /opt/textbook/src/
COPY --chown=airflow:0 textbook /opt/textbook/src/textbook
RUN pip install --no-cache-dir --no-deps /opt/textbook/src \
 && pip check

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
