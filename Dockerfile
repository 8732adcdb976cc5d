# One image for every FluxForge service; the container's command picks the service.
FROM python:3.11-slim AS build
ENV UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY libs libs
COPY services services
COPY src src
COPY tools tools
RUN uv sync --frozen --no-dev

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 fluxforge
WORKDIR /app
COPY --from=build /app /app
COPY config/config.examples.yaml /app/config/config.examples.yaml
ENV PATH="/app/.venv/bin:$PATH" FLUXFORGE_STORAGE__ROOT=/data
USER fluxforge
VOLUME ["/data"]
ENTRYPOINT ["fluxforge"]
CMD ["--help"]
