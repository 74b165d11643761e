# batch-metrics: the action's job (default) and the endpoint (`serve`) in one small image.
#
#   docker build -t batch-metrics .
#   docker run --rm -v "$PWD:/github/workspace" -e INPUT_ENDPOINT=https://... -e INPUT_TOKEN IMAGE
#   docker run --rm -p 8787:8787 -e BATCH_METRICS_TOKEN -v metrics:/data IMAGE serve --host 0.0.0.0 --db /data/metrics.db
#
# The base is pinned by digest: python:3.12-slim's multi-arch index (amd64 and arm64), so every
# build starts from the same bytes. It stays a build argument so that the tests can build from a
# local stand-in (--build-arg BASE_IMAGE=localhost/python-standin). Dependabot does not read ARG
# defaults (dependabot-core#2057): refresh the digest by hand with `docker buildx imagetools
# inspect python:3.12-slim` and the release's tests.
ARG BASE_IMAGE=python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Wheels only, every file checked against its pinned hash: nothing is compiled, so no build tools
# enter the image. image.txt is the action's requirements plus the endpoint's (Starlette, Hypercorn, psycopg).
COPY requirements/image.txt /tmp/requirements.txt
RUN python -m pip install --no-cache-dir --require-hashes --no-deps --only-binary :all: -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY entrypoint.py /app/
COPY batch_metrics/ /app/batch_metrics/
# Bytecode compiled once here, so every start reads it and nothing writes it at run time.
RUN python -m compileall -q /app

# No USER: GitHub runs Docker actions as the image's default user and documents that it must be
# root, because the mounted /github/workspace and /github/file_commands belong to the runner.
# For `serve`, run with `--user` if you want an unprivileged process.
WORKDIR /github/workspace
EXPOSE 8787
ENTRYPOINT ["python", "/app/entrypoint.py"]
