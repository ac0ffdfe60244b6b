# One image for every process of handoff tracking; the command picks the process:
#   handoff_svc | sla | notify | gateways   (run as `python -m <module>`)
# Build: docker build -t handoff-tracking:0.1.0 .
#
# The base is pinned to an exact Python patch release on an exact Debian release; a
# registry mirror may pin it further by digest (PYTHON_IMAGE=python:...@sha256:...).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: the locked dependencies, the generated protobuf code, the project -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The build tools (the code generator, mypyc and a C compiler for the sla worker's hot path)
# live in their own environment, so none of them reaches the runtime one.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.lock ./
RUN python -m venv /opt/protoc \
 && /opt/protoc/bin/pip install --constraint requirements.lock grpcio-tools mypy setuptools
COPY proto/ proto/
RUN mkdir -p services/common/gen \
 && /opt/protoc/bin/python -m grpc_tools.protoc -Iproto --python_out=services/common/gen \
      --pyi_out=services/common/gen --grpc_python_out=services/common/gen proto/handoff/v1/*.proto
COPY pyproject.toml ./
COPY services/ services/
COPY devstack/ devstack/
# Every runtime dependency at exactly the version requirements.lock pins; no dev extras.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --constraint requirements.lock . \
 && /opt/venv/bin/python -c "import handoff.v1.handoff_service_pb2, handoff_svc, sla, notify, gateways"
# The sla worker's hot path compiled (devstack/compile.py), put over the installed sources.
RUN /opt/protoc/bin/python devstack/compile.py --out /src/compiled \
 && cp -r compiled/sla compiled/common compiled/*__mypyc*.so /opt/venv/lib/python3.11/site-packages/ \
 && /opt/venv/bin/python -c "import sla.domain.clocks as m; assert m.__file__.endswith('.so'), m.__file__"

# --- runtime: the virtualenv, the config files, a user that is not root --------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DATA_DIR=/var/lib/handoff \
    GRPC_HOST=0.0.0.0 GRPC_PORT=50051 METRICS_PORT=9464
RUN groupadd --system --gid 10001 handoff \
 && useradd --system --uid 10001 --gid handoff --no-create-home --shell /usr/sbin/nologin handoff \
 && mkdir -p /var/lib/handoff && chown 10001:10001 /var/lib/handoff
COPY --from=build /opt/venv /opt/venv
COPY config/ /app/config/
WORKDIR /app
USER 10001:10001
EXPOSE 50051 9464
ENTRYPOINT ["python", "-m"]
CMD ["handoff_svc"]
