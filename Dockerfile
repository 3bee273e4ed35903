# Herald: build the `herald` binary, then run it on a slim Debian.
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
COPY tests ./tests
COPY bench ./bench
COPY examples ./examples
RUN cargo build --release --locked -p herald-cli \
    && install -D -m 0755 target/release/herald /out/herald

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --home-dir /app --shell /usr/sbin/nologin herald \
    && mkdir -p /app \
    && chown herald:herald /app
COPY --from=builder /out/herald /usr/local/bin/herald
COPY examples /app/examples
WORKDIR /app
USER herald
EXPOSE 8080
CMD ["herald", "dev", "--apps", "/app/examples/petstore/apps", "--addr", "0.0.0.0:8080"]
