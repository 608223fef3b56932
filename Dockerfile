# syntax=docker/dockerfile:1
# One image for every service: they share posint_common and the pinned dependency set, so one
# build, one scan and one tag per release; the container's command picks the service
# (`python -m gateway`, `integrations`, `orders`, `webhook_dispatcher`, or the one-shot
# `posint_devstack.setup` that creates topics and migrates). The services find their
# migrations beside their source (`services/<name>/migrations`), so the tree keeps its layout
# under /app and the packages are installed in place (editable) into /opt/venv.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /app
COPY constraints.txt ./
COPY libs ./libs
COPY services ./services
COPY sandbox ./sandbox
RUN /opt/venv/bin/pip install -c constraints.txt \
        -e libs/common -e services/integrations -e services/orders \
        -e services/webhook-dispatcher -e services/gateway -e libs/devstack -e sandbox \
 && /opt/venv/bin/python -m compileall -q /app/libs /app/services /app/sandbox

FROM python:3.11-slim AS runtime
# No build tools, caches or tests in the final stage: only the virtualenv and the source tree.
RUN groupadd --system --gid 10001 posint \
 && useradd --system --uid 10001 --gid posint --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin posint
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=9000 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080
# Numeric, so Kubernetes' runAsNonRoot can verify it; nothing is written at run time (read-only root works).
USER 10001:10001
EXPOSE 8080 9000
CMD ["python", "-m", "gateway"]
