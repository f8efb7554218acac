# adscan RE Manager image (also runs the bluesky HTTP server): docker-compose.yml builds it.
#
#   docker build -t adscan:0.1.0 .
#
# Python base pinned by exact version and Debian release.  Dependencies come only from
# pyproject.toml's pins.  The repository is installed in editable mode at /opt/adscan because
# adscan finds startup/ (qserver.yml template, permissions) and profile_collection/ next to its
# package (pyproject's package-dir mapping: iocs/, devices/, plans/ become adscan.* packages).
# No secret is baked in: the HTTP API key comes from the environment at run time.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- build stage: wheels for every pinned dependency (compilers stay out of the final image)
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . /src
RUN pip install --no-cache-dir "pip==26.3" \
    && pip wheel --no-cache-dir --wheel-dir /wheels "setuptools==80.9.0" /src

# ---- run stage
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="adscan" \
      org.opencontainers.image.description="adscan RE Manager / bluesky HTTP server"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    ADSCAN_ICONFIG=/opt/adscan/deploy/iconfig.compose.yml \
    ADSCAN_DATA_DIR=/var/lib/adscan
COPY --from=build /wheels /wheels
COPY . /opt/adscan
RUN pip install --no-cache-dir --no-index --find-links /wheels -e /opt/adscan \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --create-home --home-dir /home/adscan adscan \
    && mkdir -p /var/lib/adscan /mnt/iockad/tmp/images \
    && chown -R adscan:adscan /var/lib/adscan
USER adscan
WORKDIR /var/lib/adscan
HEALTHCHECK --interval=15s --timeout=10s --start-period=180s --retries=5 \
    CMD ["python", "/opt/adscan/deploy/entrypoint.py", "healthcheck"]
ENTRYPOINT ["python", "/opt/adscan/deploy/entrypoint.py"]
CMD ["run"]
