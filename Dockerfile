# ctrd container image: the server, ctrtool, ctrload and a demo model.
#
#   podman build --format docker -t ctrd .     (or: docker build -t ctrd .)
#   podman run --rm -p 8080:8080 ctrd      (audit log: mount /audit, UID 10001)
#
# `--format docker` keeps the HEALTHCHECK (the OCI image format has no field
# for it). Both stages start from debian:bookworm-slim and nothing else; on a
# host without registry access, scripts/podman-setup.sh builds that base
# locally. docs/OPERATIONS.md ("Container") covers env vars, volumes, the
# non-root UID and io_uring under seccomp.

# --- build: compile with the build packages of `make deps` (deps.sh --build-only)
FROM debian:bookworm-slim AS build
# Lets scripts/container-test.sh prune this stage's stale cache layers.
LABEL org.ctrd.stage=build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# deps.sh alone first, so this layer stays cached until the package list changes.
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
# CI=true adds -Werror (--build-arg CI=false to build past a warning).
# `make demo-model` trains on rows ctrtool generates: no data set needed.
ARG CI=true
# Only the three programs: tests and benchmarks run outside the image.
RUN make -j"$(nproc)" CI="$CI" build/ctrd build/ctrtool build/ctrload \
 && make CI="$CI" demo-model \
 && build/ctrtool verify build/demo.ctrm \
 && mkdir -p /out/bin \
 && cp build/ctrd build/ctrtool build/ctrload /out/bin/ \
 && strip --strip-debug /out/bin/*

# --- runtime: only the shared libraries the three programs link ------------
FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="ctrd" \
      org.opencontainers.image.description="Low-latency click-through-rate inference server with a replayable audit log"
# Packages by soname: libmicrohttpd.so.12 (pulls libgnutls30), libjansson.so.4,
# libopenblas.so.0 (pulls libgfortran5), liburing.so.2, libxxhash.so.0,
# libcrypto.so.3. libopenblas0-pthread also ships a 7 MB LAPACK that nothing
# here links (ldd is checked below); it goes, with its alternative, to keep
# the image under 150 MB. (BLAS_DIR: the amd64 path.)
ARG BLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-pthread
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libmicrohttpd12 libjansson4 libopenblas0-pthread liburing2 libxxhash0 libssl3 \
 && update-alternatives --remove liblapack.so.3-x86_64-linux-gnu "$BLAS_DIR/liblapack.so.3" \
 && rm -f "$BLAS_DIR/liblapack.so.3" \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
          /var/log/alternatives.log /var/lib/dpkg/*-old /var/cache/debconf/*-old \
 && groupadd --gid 10001 ctrd \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --no-log-init ctrd \
 && mkdir -p /models /audit \
 && chown 10001:10001 /audit \
 && chmod 0750 /audit
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /src/build/demo.ctrm /models/demo.ctrm
# Fails the build if a program needs a library this stage lacks.
RUN ! ldd /usr/local/bin/* | grep 'not found' \
 && ctrtool verify /models/demo.ctrm >/dev/null

# Every ctrd flag has an env twin (CTRD_PORT, CTRD_AUDIT_DURABILITY,
# CTRD_DRAIN_TIMEOUT_S, ...); `ctrd --help` lists them.
ENV CTRD_MODEL=/models/demo.ctrm \
    CTRD_AUDIT_DIR=/audit \
    CTRD_HOST=0.0.0.0 \
    CTRD_PORT=8080
VOLUME ["/models", "/audit"]
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["ctrd", "--check", "http://127.0.0.1:8080/readyz"]
# ctrd is PID 1: SIGTERM turns /readyz to 503, finishes requests in flight,
# syncs the audit log and exits 0 (within CTRD_DRAIN_TIMEOUT_S, default 25s:
# give `docker stop -t` / terminationGracePeriodSeconds more than that).
STOPSIGNAL SIGTERM
ENTRYPOINT ["ctrd"]
