# llmesh: one image for every service (orchestrator, processor, gateway, emulator); the
# command picks the service: `llmesh serve orchestrator` (the default), `serve gateway`, ...
# Build: docker build -t llmesh:latest .
FROM python:3.11-slim AS build
# a C compiler for the optional span encoder (setup.py), in the build stage only
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py constraints.txt README.md ./
COPY gen gen
COPY services services
COPY gateway gateway
# the package and its runtime dependencies at the pinned versions; no dev or local extras
RUN python -m venv /opt/llmesh \
    && /opt/llmesh/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/llmesh/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/llmesh --create-home llmesh
COPY --from=build /opt/llmesh /opt/llmesh
ENV PATH=/opt/llmesh/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    XDG_DATA_HOME=/var/lib/llmesh \
    LLMESH_CONFIG=/etc/llmesh/llmesh.yaml
USER 10001:10001
WORKDIR /var/lib/llmesh
# orchestrator gRPC, processor gRPC, gateway HTTP, orchestrator and processor /metrics
EXPOSE 50051 50052 8080 9464 9465
ENTRYPOINT ["llmesh"]
CMD ["serve", "orchestrator"]
