# One image for the TAMS API and its operator. The operator's pods pass only `args` (serve ..., worker), so the
# entry point is `tams-api`; the operator's own Deployment runs `command: ["tams-operator"]`.
# BASE_IMAGE: any Debian-based image with Python 3.11+ and `python3 -m venv` (e.g. one made with mmdebstrap).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/tams
WORKDIR /src
COPY pyproject.toml ./
# The service's and the operator's dependencies and the tracing extra (spec.tracing), not the test extras, in
# layers of their own: a change to the code alone reinstalls only the project. The build tools stay in this stage.
RUN python3 -c 'import sys, tomllib; project = tomllib.load(sys.stdin.buffer)["project"]; \
    print(*project["dependencies"], *project["optional-dependencies"]["tracing"], sep="\n")' \
    < pyproject.toml > requirements.txt
RUN /opt/tams/bin/pip install -r requirements.txt
COPY tams_api ./tams_api
COPY operator ./operator
# The pages' browser libraries, from the npm registry (nothing to fetch when the context has them: make image).
COPY scripts/vendor_web.py ./scripts/
RUN python3 scripts/vendor_web.py
RUN /opt/tams/bin/pip install --no-deps .

FROM ${BASE_IMAGE}
# The same base as the build stage, so the venv's interpreter links resolve. A passwd entry for user 10001
# (without useradd, which minimal bases may lack) so that libraries asking who they run as get an answer.
RUN echo 'tams:x:10001:10001:TAMS:/tmp:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'tams:x:10001:' >> /etc/group \
    && mkdir -p /data /media && chown 10001:10001 /data /media
COPY --from=build /opt/tams /opt/tams
# Bytecode was compiled at install; nothing is written outside /tmp and the data volumes, so the root
# filesystem may be read-only (HOME under /tmp, an emptyDir in the pods).
ENV PATH=/opt/tams/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TAMS_DATA_DIR=/data
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
ENTRYPOINT ["tams-api"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
