# One image for every FluxForge service; the container's command picks the service.
# Runs as uid/gid 10001; /data, /spool and /var/lib/fluxforge belong to it, so a named volume
# mounted there starts out writable (Docker copies the directory's owner into a new volume).
FROM python:3.11.11-slim-bookworm AS build
ENV UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
# A C compiler for the kernel (scripts/build_kernel.py), in this stage only; any version will do.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
# Rust for the native kernel (libs/fluxforge_native, built by maturin during `uv sync`), in this
# stage only: the image gets the built extension, not the toolchain.
COPY --from=rust:1.95-slim-bookworm /usr/local/rustup /usr/local/rustup
COPY --from=rust:1.95-slim-bookworm /usr/local/cargo /usr/local/cargo
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH="/usr/local/cargo/bin:$PATH"
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY libs libs
COPY services services
COPY src src
COPY tools tools
COPY scripts/build_kernel.py scripts/build_kernel.py
# The workspace's own sources are installed editable, which UV_COMPILE_BYTECODE leaves alone. The
# kernel group (mypy, setuptools) is installed to compile the kernel, then removed by the last sync.
RUN uv sync --frozen --no-dev --group kernel \
    && .venv/bin/python -m compileall -q src libs/*/src services/*/src tools/*/src \
    && .venv/bin/python scripts/build_kernel.py --force --required \
    && uv sync --frozen --no-dev \
    && rm -rf libs/fluxforge_native/target

FROM python:3.11.11-slim-bookworm
RUN groupadd --gid 10001 fluxforge \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin fluxforge \
    && mkdir -p /data /spool /var/lib/fluxforge \
    && chown 10001:10001 /data /spool /var/lib/fluxforge
WORKDIR /app
COPY --from=build /app /app
COPY config/config.examples.yaml /app/config/config.examples.yaml
ENV PATH="/app/.venv/bin:$PATH" FLUXFORGE_STORAGE__ROOT=/data PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
VOLUME ["/data"]
ENTRYPOINT ["fluxforge"]
CMD ["--help"]
