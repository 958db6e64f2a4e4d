# The store's image: one `shop` binary, one service per container (`shop serve <service>`).
#   docker build -t shop .
#   docker run --rm -p 8080:8080 -e SHOP_USER_TOKEN_SECRET=… -e SHOP_SERVICE_TOKEN_SECRET=… \
#     shop serve gateway --peer order=order:8081,…
# deploy/compose.yaml and deploy/helm/shop run the six services from it. The simulation, for
# sharded sweeps (the chart's sweep Job): `docker build --target sim -t shop-sim .`

# ---- build: the release binary ----
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY services services
# The gateway serves docs/openapi/public.json (compiled in).
COPY docs/openapi docs/openapi
COPY sim sim
RUN cargo fetch --locked
RUN cargo build --release --locked -p shop --bin shop \
 && install -D -m 0755 target/release/shop /out/shop \
 && mkdir -p /out/data

# ---- sim: the simulation harness and its scenarios ----
FROM build AS sim-build
COPY scenarios scenarios
RUN cargo build --release --locked -p sim --bin sim && install -D -m 0755 target/release/sim /out/sim

# debug-nonroot adds busybox (/busybox/sh): the sweep Job computes its shard from
# JOB_COMPLETION_INDEX.
FROM gcr.io/distroless/cc-debian12:debug-nonroot AS sim
USER 65532:65532
COPY --from=sim-build /out/sim /usr/local/bin/sim
# The sim reads its scenarios next to where it was built (sim/../scenarios).
COPY --from=sim-build /src/scenarios /src/scenarios
WORKDIR /reports
ENTRYPOINT ["/usr/local/bin/sim"]
CMD ["--help"]

# ---- the store (default target): glibc and the binary, no shell, as a non-root user ----
FROM gcr.io/distroless/cc-debian12:nonroot AS shop
# uid/gid 65532 ("nonroot"): the Helm chart's securityContext uses the same numbers.
USER 65532:65532
COPY --from=build /out/shop /usr/local/bin/shop
# Each service keeps its SQLite file here (a volume per service).
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME ["/data"]
# Gateway 8080; order, billing, warehouse, delivery, notification 8081-8085.
EXPOSE 8080 8081 8082 8083 8084 8085
ENTRYPOINT ["/usr/local/bin/shop", "--host", "0.0.0.0", "--data-dir", "/data"]
CMD ["serve", "gateway"]
