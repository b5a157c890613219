# syntax=docker/dockerfile:1
# sip-realtime-gateway container image.
#
#   docker build -t sip-realtime-gateway .
#   docker run --rm --network host -e OPENAI_API_KEY \
#     -v $PWD/deploy/gateway/gateway.toml:/etc/sip-realtime-gateway/gateway.toml:ro sip-realtime-gateway
#
# Without OPENAI_API_KEY the gateway answers calls with its built-in Realtime simulator.
# SIP and RTP are UDP: see docs/deployment.md for host networking vs published port ranges.

# ---- build stage: turn the source tree into a wheel (plus wheels of every dependency) ----------
FROM python:3.12-slim AS build
# gcc builds the compiled speedups (gateway/media/_jitter.c, _inbound.c, _outbound.c, _playout*.c,
# _tick.c, _clock.c, gateway/_wsframe.c; the image has the Python headers). Only this stage has a compiler: the
# runtime stage installs the built wheel.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Copy only what the build needs, so editing docs or tests does not invalidate the layer cache.
COPY pyproject.toml setup.py README.md ./
COPY sip ./sip
COPY gateway ./gateway
# SRG_BUILD_EXTENSION=yes: a failed compile fails the image build instead of shipping the
# slower pure-Python buffer unnoticed.
RUN pip install --no-cache-dir --upgrade pip \
 && SRG_BUILD_EXTENSION=yes pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- runtime stage: slim Python, the wheels, no compiler, no source tree ----------------------
FROM python:3.12-slim AS runtime
LABEL org.opencontainers.image.title="sip-realtime-gateway" \
      org.opencontainers.image.description="SIP/RTP gateway bridging phone calls to the OpenAI Realtime API" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SRG_CONFIG=/etc/sip-realtime-gateway/gateway.toml
# uvloop is a declared dependency on Linux; it is named again so a wheel-less platform fails the
# build loudly instead of silently running on the slower default event loop.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels sip-realtime-gateway uvloop \
 && python -c "import uvloop, gateway, sip"
# A fixed, unprivileged uid/gid (10001) so volume permissions and Kubernetes
# runAsUser/fsGroup can be set to match. SIP 5060 and the RTP ports are above 1023, so the
# non-root user needs no capability to bind them, even on host networking.
RUN groupadd --system --gid 10001 srg \
 && useradd --system --uid 10001 --gid srg --home-dir /var/lib/sip-realtime-gateway \
            --create-home --shell /usr/sbin/nologin srg \
 && mkdir -p /etc/sip-realtime-gateway /var/lib/sip-realtime-gateway/records \
             /var/lib/sip-realtime-gateway/recordings \
 && chown -R srg:srg /var/lib/sip-realtime-gateway
COPY deploy/gateway/image.toml /etc/sip-realtime-gateway/gateway.toml
USER srg:srg
WORKDIR /var/lib/sip-realtime-gateway

# SIP (UDP and TCP on the same port), SIP over TLS (sip.tls.port, when [sip.tls] is enabled)
# and the RTP range of deploy/gateway/gateway.toml
# (media.rtp_port_min/max). EXPOSE documents; publishing is up to `docker run -p` / compose.
EXPOSE 5060/udp 5060/tcp 5061/tcp 20000-20049/udp
# Control API (/healthz, /readyz, /metrics). It binds 127.0.0.1 by default, which is exactly
# where this check runs (inside the container); slim has no curl, hence urllib.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
# SIGTERM starts the drain (503 to new INVITEs, live calls finish, BYE at the drain timeout):
# give `docker stop -t` more than --drain-timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sip-realtime-gateway"]
CMD ["run", "--config", "/etc/sip-realtime-gateway/gateway.toml"]
