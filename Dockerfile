# Herald: build the `herald` binary and the example's (`herald-petstore`: herald with the
# example's Rust code), then run the example on a slim Debian.
#
#   docker build -t herald .
#   docker compose up          (with Postgres and NATS; see compose.yaml)

FROM rust:1-bookworm AS builder
WORKDIR /src
# Only what the build needs (keeps the host's target/ and .herald/ out of the
# image; add a COPY here should the build ever read another top-level folder).
COPY Cargo.toml Cargo.lock ./
# The workspace's crates (every member must be present for cargo to read the workspace).
COPY bus ./bus
COPY api ./api
COPY handler ./handler
COPY projector ./projector
COPY workers ./workers
COPY cli ./cli
COPY testkit ./testkit
COPY tests ./tests
COPY bench ./bench
COPY examples ./examples
RUN cargo build --release --locked -p herald-cli -p herald-petstore \
    && install -D -m 0755 target/release/herald /out/herald \
    && install -D -m 0755 target/release/herald-petstore /out/herald-petstore

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --home-dir /app --shell /usr/sbin/nologin herald \
    && mkdir -p /app \
    && chown herald:herald /app
COPY --from=builder /out/herald /out/herald-petstore /usr/local/bin/
COPY examples /app/examples
WORKDIR /app
USER herald
EXPOSE 8080
CMD ["herald-petstore", "dev", "--apps", "/app/examples/petstore/apps", "--addr", "0.0.0.0:8080"]
