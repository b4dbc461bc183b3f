# syntax=docker/dockerfile:1
# msgreach container image: the monitor, as a non-root user, fit for a read-only root file system
# and no capabilities at all. See docs/deploy.md ("Container image").
#
#   docker build -t msgreach .                                  # python:3.11-slim-bookworm, pinned by digest
#   docker build --build-arg BASE_IMAGE=localhost/debian-python:bookworm -t msgreach .
#   docker run -d --name msgreach --read-only --cap-drop=ALL --security-opt no-new-privileges \
#     -v ./config.yaml:/etc/msgreach/config.yaml:ro -v msgreach-state:/var/lib/msgreach msgreach
#
# Volumes: /etc/msgreach (config, read-only; the image ships a default), /var/lib/msgreach (state:
# the evidence archive; owned by uid 10001). The listener binds 0.0.0.0:9910 inside the
# container so a Prometheus agent on the same container network can scrape it: never publish
# the port to the world (no `-p 9910:9910` on a public address).

# Any image with Python 3.11 and its venv module, used by both stages (the virtualenv copied from
# the first stage points at the base's interpreter). Pinned by digest: two builds start from the
# same bytes. The digest was read from public material, not pulled here; refresh it (and check a
# new one) as docs/deploy.md says ("Reproducible builds").
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${BASE_IMAGE} AS build
# Package index settings, for builds behind a mirror or a TLS-inspecting proxy.
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_CERT=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 PIP_INDEX_URL=${PIP_INDEX_URL} PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} PIP_CERT=${PIP_CERT}
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/requirements.lock deploy/build-requirements.lock deploy/
COPY configs/ configs/
COPY probe/ probe/
COPY deploy/container/ deploy/container/
# Every dependency from the hash lock (deploy/requirements.lock, made from pyproject.toml by
# deploy/lock.sh): exact versions, each file checked against its hash, nothing resolved here.
# msgreach's own wheel is built from this checkout with the locked hatchling, without build
# isolation (which would fetch an unpinned one). The lock brings every dependency the shipped
# catalogs use, aioquic (the `quic` check) and curl-cffi (browser-like ClientHellos): the import
# check fails the build if either is missing; `pip check` if the lock lacks anything.
# Byte-compiled here: the read-only root file system cannot take .pyc files later. The check-config
# run also keeps the code `dataclass` generates beside probe/lean.py's bytecode (probe.lean), which
# it writes only where bytecode may be written.
RUN python3 -m venv /opt/msgreach \
 && python3 -m venv /tmp/build \
 && /tmp/build/bin/pip install --require-hashes --no-deps -r deploy/build-requirements.lock \
 && /tmp/build/bin/pip wheel --no-deps --no-build-isolation -w /tmp/dist . \
 && /opt/msgreach/bin/pip install --no-compile --require-hashes --no-deps -r deploy/requirements.lock \
 && /opt/msgreach/bin/pip install --no-compile --no-deps /tmp/dist/msgreach-*.whl \
 && /opt/msgreach/bin/pip check \
 && /opt/msgreach/bin/python -c 'import aioquic, curl_cffi, bcrypt' \
 && /opt/msgreach/bin/pip uninstall -y -q pip setuptools \
 && install -m 0644 deploy/container/healthcheck.py /opt/msgreach/healthcheck.py \
 && /opt/msgreach/bin/python -m compileall -q -j 0 /opt/msgreach \
 && PYTHONDONTWRITEBYTECODE= /opt/msgreach/bin/msgreach check-config deploy/container/config.yaml \
 && mkdir -p /out/state

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="msgreach" \
      org.opencontainers.image.description="Tells whether WhatsApp, Telegram and Signal are reachable from a vantage point, and how they are blocked" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
COPY --from=build /opt/msgreach /opt/msgreach
COPY --from=build /src/deploy/container/config.yaml /etc/msgreach/config.yaml
COPY --from=build --chown=10001:10001 /out/state/ /var/lib/msgreach/
ENV PATH=/opt/msgreach/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MSGREACH_HEALTH_URL=http://127.0.0.1:9910/healthz \
    MSGREACH_STATE_DIR=/var/lib/msgreach
# A numeric user that exists nowhere else: no login, no home, nothing to escalate from.
USER 10001:10001
WORKDIR /var/lib/msgreach
VOLUME ["/var/lib/msgreach"]
EXPOSE 9910
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/opt/msgreach/bin/python", "/opt/msgreach/healthcheck.py"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/msgreach/bin/msgreach"]
CMD ["run", "--config", "/etc/msgreach/config.yaml", "--listen", "0.0.0.0:9910"]
