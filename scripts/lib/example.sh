# shellcheck shell=bash
# Runs the example's binary (a debug build) for a script's own checks: its own database
# (herald_<name>_<random>) and NATS prefix, `herald serve` on a free loopback port, and on exit
# the server stopped and its database and streams removed. Source scripts/lib/services.sh
# first, then:
#
#   herald_start_example <name>      sets HERALD_EXAMPLE_BASE (http://127.0.0.1:port),
#                                    HERALD_EXAMPLE_PID, HERALD_EXAMPLE_LOG and
#                                    HERALD_EXAMPLE_TOKEN (an admin of tenant <name>)
#
# Extra HERALD_* settings for the server are taken from the environment as usual.

herald_start_example() { # name
	local name=$1
	herald_ensure_services
	herald_info "building the example's binary (cargo build)..."
	cargo build --locked -p herald-petstore
	HERALD_EXAMPLE_BIN=${CARGO_TARGET_DIR:-target}/debug/herald-petstore

	local run_id work secret
	run_id=$(head -c 5 /dev/urandom | od -An -tx1 | tr -d ' \n')
	work=$HERALD_STATE_DIR/$name
	mkdir -p "$work"
	HERALD_EXAMPLE_LOG=$work/herald.log
	HERALD__EXAMPLE_DATABASE=herald_${name}_$run_id
	secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

	HERALD_DATABASE__URL=$(herald_pg_url "$HERALD__EXAMPLE_DATABASE")
	HERALD_NATS__URL=$(herald_nats_url)
	HERALD_NATS__PREFIX=$name$run_id
	HERALD_AUTH__HS256_SECRET=$secret
	HERALD_AUTH__OPERATOR_TENANT=$name
	HERALD_APPS__DIR=examples/petstore/apps
	HERALD_HTTP__ADDR=127.0.0.1:0
	HERALD_LOG__FORMAT=json
	HERALD_WEBHOOKS__SECRETS__WAREHOUSE=whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')
	export HERALD_DATABASE__URL HERALD_NATS__URL HERALD_NATS__PREFIX HERALD_AUTH__HS256_SECRET \
		HERALD_AUTH__OPERATOR_TENANT HERALD_APPS__DIR HERALD_HTTP__ADDR HERALD_LOG__FORMAT \
		HERALD_WEBHOOKS__SECRETS__WAREHOUSE

	HERALD_EXAMPLE_PID=""
	trap herald__stop_example EXIT
	trap 'exit 130' INT TERM

	herald_info "database $HERALD__EXAMPLE_DATABASE, NATS prefix $HERALD_NATS__PREFIX, server log $HERALD_EXAMPLE_LOG"
	"$HERALD_EXAMPLE_BIN" migrate >/dev/null
	"$HERALD_EXAMPLE_BIN" serve >"$HERALD_EXAMPLE_LOG" 2>&1 &
	HERALD_EXAMPLE_PID=$!

	local addr=""
	for _ in $(seq 150); do
		herald__pid_alive "$HERALD_EXAMPLE_PID" || break
		addr=$(sed -n 's/.*"addr":"\(127\.0\.0\.1:[0-9]*\)".*"message":"listening".*/\1/p; s/.*"message":"listening".*"addr":"\(127\.0\.0\.1:[0-9]*\)".*/\1/p' "$HERALD_EXAMPLE_LOG" | head -n1)
		[[ -n "$addr" ]] && break
		sleep 0.2
	done
	if [[ -z "$addr" ]]; then
		herald__log_tail "$HERALD_EXAMPLE_LOG"
		herald_die "herald serve did not start"
	fi
	HERALD_EXAMPLE_BASE=http://$addr
	herald_info "herald is serving at $HERALD_EXAMPLE_BASE (pid $HERALD_EXAMPLE_PID)"
	HERALD_EXAMPLE_TOKEN=$("$HERALD_EXAMPLE_BIN" token --sub "$name-admin" --tenant "$name" --roles admin --ttl 3600)
}

# Whether the example still runs and answers /healthz; prints its log's tail when not.
herald_example_alive() {
	if ! herald__pid_alive "$HERALD_EXAMPLE_PID"; then
		herald_info "the herald server died during the run"
	elif ! curl -fsS --max-time 5 "$HERALD_EXAMPLE_BASE/healthz" >/dev/null; then
		herald_info "the herald server no longer answers /healthz"
	else
		return 0
	fi
	herald__log_tail "$HERALD_EXAMPLE_LOG"
	return 1
}

herald__stop_example() {
	local status=$?
	if [[ -n "$HERALD_EXAMPLE_PID" ]] && herald__pid_alive "$HERALD_EXAMPLE_PID"; then
		kill -TERM "$HERALD_EXAMPLE_PID" 2>/dev/null || true
		for _ in $(seq 50); do
			herald__pid_alive "$HERALD_EXAMPLE_PID" || break
			sleep 0.2
		done
		herald__pid_alive "$HERALD_EXAMPLE_PID" && kill -KILL "$HERALD_EXAMPLE_PID" 2>/dev/null
		wait "$HERALD_EXAMPLE_PID" 2>/dev/null || true
	fi
	(
		export PGCONNECT_TIMEOUT=5
		[[ -n "$HERALD_PG_PASSWORD" ]] && export PGPASSWORD="$HERALD_PG_PASSWORD"
		"$(herald__pg_tool psql)" -X -w -q -d "$(herald_pg_url postgres)" \
			-c "drop database if exists $HERALD__EXAMPLE_DATABASE with (force)" </dev/null >/dev/null 2>&1
	) || herald_warn "could not drop the database $HERALD__EXAMPLE_DATABASE"
	python3 scripts/lib/nats_streams.py "$HERALD_NATS__URL" "$HERALD_NATS__PREFIX" 2>/dev/null ||
		herald_warn "could not delete the NATS streams of prefix $HERALD_NATS__PREFIX"
	exit "$status"
}
