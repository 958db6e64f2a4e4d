# The store's image: one `shop` binary, one service per container (`shop serve <service>`).
#   docker build -t shop .
#   docker run --rm -p 8080:8080 -e SHOP_USER_TOKEN_SECRET=… -e SHOP_SERVICE_TOKEN_SECRET=… \
#     shop serve gateway --peer order=order:8081,…
# deploy/compose.yaml and deploy/helm/shop run the six services from it.

# ---- build: the release binary, dependencies cached in their own layer ----
FROM rust:1-bookworm AS build
WORKDIR /src
# Manifests first, so a code change does not refetch the crates.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY services services
COPY sim sim
RUN cargo fetch --locked
RUN cargo build --release --locked -p shop --bin shop \
 && install -D -m 0755 target/release/shop /out/shop \
 && mkdir -p /out/data

# ---- run: glibc and nothing else (no shell, no package manager), as a non-root user ----
FROM gcr.io/distroless/cc-debian12:nonroot
# uid/gid 65532 ("nonroot"): the Helm chart's securityContext uses the same numbers.
USER 65532:65532
COPY --from=build /out/shop /usr/local/bin/shop
# Each service keeps its SQLite file (and, without the environment secrets, secrets.json) here.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME ["/data"]
# Gateway 8080; order, billing, warehouse, delivery, notification 8081-8085.
EXPOSE 8080 8081 8082 8083 8084 8085
ENTRYPOINT ["/usr/local/bin/shop", "--host", "0.0.0.0", "--data-dir", "/data"]
CMD ["serve", "gateway"]
