# shellcheck shell=bash
#
# Shared service logic for scripts/dev, scripts/test and scripts/services.
# Source it from a script that runs with `set -euo pipefail`; it is not meant
# to be executed.
#
# It makes sure PostgreSQL and NATS (with JetStream) are reachable. Servers
# already answering at the configured addresses are used as they are.
# Otherwise local ones are started from the installed binaries (installing
# Debian's `postgresql` / `nats-server` packages when they are missing and we
# may use apt-get), with their data under .herald/ in the repository. Servers
# started here keep running after the script exits; `scripts/services stop`
# stops them. Nothing here ever stops or changes a server it did not start.
#
# Configuration (environment):
#   HERALD_PG_HOST            Postgres host                       (127.0.0.1)
#   HERALD_PG_PORT            Postgres port                       (5432)
#   HERALD_PG_USER            Postgres user                       (postgres)
#   HERALD_PG_PASSWORD        Postgres password, if it needs one  (none)
#   HERALD_PG_DATABASE        database for `scripts/dev`          (herald)
#   HERALD_NATS_HOST          NATS host                           (127.0.0.1)
#   HERALD_NATS_PORT          NATS client port                    (4222)
#   HERALD_PG_FALLBACK_PORT   see below                           (55432)
#   HERALD_NATS_FALLBACK_PORT see below                           (54222)
#
# When HERALD_PG_PORT / HERALD_NATS_PORT are NOT set and the default port is
# taken by a server we cannot use (a Postgres that refuses our login, e.g.
# Debian's freshly installed cluster with password auth; a NATS without
# JetStream; something that is not NATS), a local server is started on the
# fallback port instead. When the port IS set explicitly, that is an error.
#
# After herald_ensure_services: herald_pg_url DB, herald_nats_url and
# herald_redact_url give the URLs to use.

# ---------------------------------------------------------------------------
# Basics

HERALD_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
HERALD_STATE_DIR="$HERALD_REPO_ROOT/.herald"

herald_info() { printf 'herald: %s\n' "$*" >&2; }
herald_warn() { printf 'herald: warning: %s\n' "$*" >&2; }
herald_die() {
	printf 'herald: error: %s\n' "$*" >&2
	exit 1
}

# Remember whether the ports were chosen explicitly before applying defaults.
HERALD__PG_PORT_EXPLICIT=0
HERALD__NATS_PORT_EXPLICIT=0
[[ -n "${HERALD_PG_PORT:-}" ]] && HERALD__PG_PORT_EXPLICIT=1
[[ -n "${HERALD_NATS_PORT:-}" ]] && HERALD__NATS_PORT_EXPLICIT=1

HERALD_PG_HOST="${HERALD_PG_HOST:-127.0.0.1}"
HERALD_PG_PORT="${HERALD_PG_PORT:-5432}"
HERALD_PG_USER="${HERALD_PG_USER:-postgres}"
HERALD_PG_PASSWORD="${HERALD_PG_PASSWORD:-}"
HERALD_PG_DATABASE="${HERALD_PG_DATABASE:-herald}"
HERALD_PG_FALLBACK_PORT="${HERALD_PG_FALLBACK_PORT:-55432}"
HERALD_NATS_HOST="${HERALD_NATS_HOST:-127.0.0.1}"
HERALD_NATS_PORT="${HERALD_NATS_PORT:-4222}"
HERALD_NATS_FALLBACK_PORT="${HERALD_NATS_FALLBACK_PORT:-54222}"

herald__check_port() {
	local name=$1 value=$2
	if ! [[ "$value" =~ ^[0-9]+$ ]] || ((10#$value < 1 || 10#$value > 65535)); then
		herald_die "$name must be a TCP port number (1-65535), got '$value'"
	fi
}
herald__check_port HERALD_PG_PORT "$HERALD_PG_PORT"
herald__check_port HERALD_NATS_PORT "$HERALD_NATS_PORT"
herald__check_port HERALD_PG_FALLBACK_PORT "$HERALD_PG_FALLBACK_PORT"
herald__check_port HERALD_NATS_FALLBACK_PORT "$HERALD_NATS_FALLBACK_PORT"

# What herald_ensure_* settled on.
HERALD_PG_RESOLVED_HOST=""
HERALD_PG_RESOLVED_PORT=""
HERALD_NATS_RESOLVED_HOST=""
HERALD_NATS_RESOLVED_PORT=""

herald__is_local_host() {
	case "$1" in
	localhost | ::1 | 127.*) return 0 ;;
	*) return 1 ;;
	esac
}

# Host as it goes into a URL (IPv6 literals in brackets).
herald__url_host() {
	if [[ "$1" == *:* && "$1" != \[* ]]; then
		printf '[%s]' "$1"
	else
		printf '%s' "$1"
	fi
}

herald__urlencode() {
	local s=$1 out="" c i
	local LC_ALL=C
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case "$c" in
		[a-zA-Z0-9.~_-]) out+=$c ;;
		*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s' "$out"
}

# Quote a string for /bin/sh (pg_ctl passes -o through a shell).
herald__sh_quote() {
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}

# Run with a bound on time when `timeout` exists.
herald__timeout() {
	local secs=$1
	shift
	if command -v timeout >/dev/null 2>&1; then
		timeout "$secs" "$@"
	else
		"$@"
	fi
}

herald__tcp_open() { # host port
	# shellcheck disable=SC2016 # expanded by the inner bash
	herald__timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

herald__log_tail() { # file
	if [[ -r "$1" ]]; then
		herald_info "last lines of $1:"
		tail -n 20 "$1" | sed 's/^/    /' >&2 || true
	fi
}

herald__short_hash() {
	if command -v sha256sum >/dev/null 2>&1; then
		printf '%s' "$1" | sha256sum | cut -c1-12
	else
		printf '%s' "$1" | cksum | cut -d' ' -f1
	fi
}

# Close every fd above 2 in the current (sub)shell. Servers we start must not
# inherit our lock or any pipe a caller (a CI runner, say) waits on.
herald__close_fds() {
	local fd
	if [[ -d /proc/$BASHPID/fd ]]; then
		for fd in /proc/"$BASHPID"/fd/*; do
			fd=${fd##*/}
			if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then
				eval "exec $fd>&-" 2>/dev/null || true
			fi
		done
	else
		for ((fd = 3; fd < 32; fd++)); do
			eval "exec $fd>&-" 2>/dev/null || true
		done
	fi
}

# Run a command with fds above 2 closed (see above).
herald__detached() { (herald__close_fds && exec "$@"); }

herald__pid_alive() { [[ "$1" =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null; }

# ---------------------------------------------------------------------------
# Locking: two scripts starting at once must not both start a server.
# fd 9 holds the lock; every server we spawn gets it closed (herald__detached),
# or it would keep the lock for its whole life.

herald__lock() {
	mkdir -p "$HERALD_STATE_DIR"
	command -v flock >/dev/null 2>&1 || return 0
	exec 9>>"$HERALD_STATE_DIR/services.lock"
	if ! flock -n 9; then
		herald_info "waiting for another herald script that is starting services (up to 120 s)..."
		flock -w 120 9 || herald_die "timed out waiting for the lock $HERALD_STATE_DIR/services.lock"
	fi
}

herald__unlock() { exec 9>&-; }

# ---------------------------------------------------------------------------
# Installing packages

HERALD__APT_UPDATED=0

herald__can_install() {
	command -v apt-get >/dev/null 2>&1 || return 1
	((EUID == 0)) && return 0
	command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null
}

herald__apt_install() { # packages...
	if ! herald__can_install; then
		if command -v apt-get >/dev/null 2>&1; then
			herald_die "missing: $*. Install it, then run this again:
    sudo apt-get update && sudo apt-get install -y $*"
		fi
		herald_die "missing: $* (Debian package names). Install them with your system's package manager, then run this again."
	fi
	local -a sudo=()
	((EUID == 0)) || sudo=(sudo -n)
	if ((HERALD__APT_UPDATED == 0)); then
		herald_info "running apt-get update..."
		"${sudo[@]}" apt-get update </dev/null >&2 || herald_die "apt-get update failed"
		HERALD__APT_UPDATED=1
	fi
	herald_info "installing Debian packages: $*"
	herald__detached "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" </dev/null >&2 ||
		herald_die "apt-get install $* failed"
}

# ---------------------------------------------------------------------------
# PostgreSQL

# Newest /usr/lib/postgresql/N/bin (or N given as $1, if installed).
herald__pg_libdirs() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		if [[ -d "$d" ]]; then printf '%s\n' "$d"; fi
	done | sort -t/ -k5,5 -V -r
}

# A client tool (pg_isready, psql): /usr/lib/postgresql first, then PATH.
herald__pg_tool() {
	local d
	while IFS= read -r d; do
		if [[ -x "$d/$1" ]]; then
			printf '%s\n' "$d/$1"
			return 0
		fi
	done < <(herald__pg_libdirs)
	command -v "$1" 2>/dev/null
}

# Sets HERALD__INITDB and HERALD__PG_CTL. $1: wanted major version (optional).
herald__pg_find_bins() {
	local want=${1:-} d p
	HERALD__INITDB="" HERALD__PG_CTL=""
	if [[ -n "$want" && -x "/usr/lib/postgresql/$want/bin/pg_ctl" && -x "/usr/lib/postgresql/$want/bin/initdb" ]]; then
		HERALD__INITDB=/usr/lib/postgresql/$want/bin/initdb
		HERALD__PG_CTL=/usr/lib/postgresql/$want/bin/pg_ctl
		return 0
	fi
	while IFS= read -r d; do
		if [[ -x "$d/pg_ctl" && -x "$d/initdb" && -x "$d/postgres" ]]; then
			HERALD__INITDB=$d/initdb
			HERALD__PG_CTL=$d/pg_ctl
			return 0
		fi
	done < <(herald__pg_libdirs)
	if p=$(command -v pg_ctl 2>/dev/null) && command -v initdb >/dev/null 2>&1; then
		HERALD__PG_CTL=$p
		HERALD__INITDB=$(command -v initdb)
		return 0
	fi
	return 1
}

herald__pg_major() { # pg_ctl path -> "15"
	"$1" --version 2>/dev/null | sed -n 's/.*) \([0-9][0-9]*\).*/\1/p' | head -n1
}

# Probe host:port. Returns 0 usable, 1 unreachable, 2 reachable but our login
# fails (reason in HERALD__PG_PROBE_ERR).
HERALD__PG_PROBE_ERR=""
herald__pg_probe() {
	local host=$1 port=$2 isready psql rc i out
	HERALD__PG_PROBE_ERR=""
	if isready=$(herald__pg_tool pg_isready); then
		for ((i = 0; ; i++)); do
			rc=0
			herald__timeout 10 "$isready" -q -h "$host" -p "$port" -t 3 || rc=$?
			case $rc in
			0) break ;;
			1) # server is starting up / shutting down: wait, bounded
				if ((i >= 60)); then
					HERALD__PG_PROBE_ERR="server at $host:$port keeps rejecting connections (starting up?)"
					return 2
				fi
				((i == 0)) && herald_info "Postgres at $host:$port is starting up; waiting (up to 30 s)..."
				sleep 0.5
				;;
			*) return 1 ;;
			esac
		done
	else
		herald__tcp_open "$host" "$port" || return 1
	fi
	if psql=$(herald__pg_tool psql); then
		if ! out=$(
			export PGCONNECT_TIMEOUT=5
			[[ -n "$HERALD_PG_PASSWORD" ]] && export PGPASSWORD="$HERALD_PG_PASSWORD"
			herald__timeout 15 "$psql" -X -w -q -A -t -h "$host" -p "$port" -U "$HERALD_PG_USER" -d postgres \
				-c 'select 1' 2>&1 </dev/null >/dev/null
		); then
			HERALD__PG_PROBE_ERR=$(printf '%s\n' "$out" | head -n1)
			[[ -n "$HERALD__PG_PROBE_ERR" ]] || HERALD__PG_PROBE_ERR="login failed"
			return 2
		fi
	fi
	return 0
}

herald__ensure_pg_os_user() {
	id -u postgres >/dev/null 2>&1 && return 0
	command -v useradd >/dev/null 2>&1 || herald_die "need a 'postgres' system user to run Postgres as (initdb refuses root), and useradd is missing"
	herald_info "creating system user 'postgres' to run the local Postgres (it refuses to run as root)"
	if getent group postgres >/dev/null 2>&1; then
		useradd --system -g postgres --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres
	else
		useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres
	fi
}

# Run a command as the user Postgres runs as: ourselves, or `postgres` when
# we are root; from /, with fds above 2 closed (pg_ctl start leaves the server
# running with whatever it inherited).
herald__as_pg() {
	if ((EUID != 0)); then
		(cd / && herald__close_fds && exec "$@")
	elif command -v runuser >/dev/null 2>&1; then
		(cd / && herald__close_fds && exec runuser -u postgres -- "$@")
	else
		(cd / && herald__close_fds && exec su postgres -s /bin/bash -c "$(printf '%q ' "$@")")
	fi
}

# Where the local cluster lives. Normally .herald/ in the repo; when we are
# root and the `postgres` user cannot reach the repo (say it is under a 0700
# /root), /var/tmp/herald-<hash of repo path>/ instead.
herald__pg_alt_base() { printf '/var/tmp/herald-%s' "$(herald__short_hash "$HERALD_REPO_ROOT")"; }

HERALD__PG_BASE=""
herald__pg_layout() { # sets HERALD__PG_BASE/DATA/LOG/SOCKDIR; may create things
	if [[ -z "$HERALD__PG_BASE" ]]; then
		HERALD__PG_BASE=$HERALD_STATE_DIR
		mkdir -p "$HERALD_STATE_DIR"
		if ((EUID == 0)); then
			herald__ensure_pg_os_user
			chmod go+rx "$HERALD_STATE_DIR" 2>/dev/null || true
			if ! herald__as_pg test -x "$HERALD_STATE_DIR"; then
				HERALD__PG_BASE=$(herald__pg_alt_base)
				herald_info "user 'postgres' cannot reach $HERALD_STATE_DIR (a parent directory is not traversable), so the local Postgres data goes in $HERALD__PG_BASE instead"
				mkdir -p "$HERALD__PG_BASE"
				chmod 0755 "$HERALD__PG_BASE"
			fi
		fi
	fi
	HERALD__PG_DATA=$HERALD__PG_BASE/postgres
	HERALD__PG_LOG=$HERALD__PG_BASE/postgres.log
	HERALD__PG_SOCKDIR=$HERALD__PG_BASE/pg-run
}

# Data dirs a local cluster of ours may be in (for status / stop).
herald__pg_candidate_dirs() {
	printf '%s\n' "$HERALD_STATE_DIR/postgres"
	local alt
	alt=$(herald__pg_alt_base)/postgres
	[[ -d "$alt" ]] && printf '%s\n' "$alt"
	return 0
}

# pid and port of the postmaster running from data dir $1 (empty if none).
herald__pg_running() {
	local pidfile=$1/postmaster.pid pid port
	[[ -r "$pidfile" ]] || return 1
	pid=$(sed -n 1p "$pidfile" 2>/dev/null)
	port=$(sed -n 4p "$pidfile" 2>/dev/null)
	herald__pid_alive "$pid" || return 1
	printf '%s %s\n' "$pid" "$port"
}

herald__pg_stop_dir() { # data dir
	local data=$1 running pid port major i
	running=$(herald__pg_running "$data") || return 0
	read -r pid port <<<"$running"
	herald_info "stopping local Postgres (pid $pid, port $port, data $data)..."
	major=$(cat "$data/PG_VERSION" 2>/dev/null || true)
	if herald__pg_find_bins "$major"; then
		if herald__as_pg "$HERALD__PG_CTL" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1; then
			return 0
		fi
		herald_warn "fast shutdown did not finish in 30 s; forcing (immediate)"
		herald__as_pg "$HERALD__PG_CTL" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 && return 0
	else
		kill -INT "$pid" 2>/dev/null || true
		for ((i = 0; i < 150; i++)); do
			herald__pid_alive "$pid" || return 0
			sleep 0.2
		done
	fi
	herald__pid_alive "$pid" && herald_die "could not stop Postgres pid $pid"
	return 0
}

herald__pg_start_local() { # host port
	local host=$1 port=$2 running pid rport major bin_major listen sock opts out
	herald__pg_layout
	local data=$HERALD__PG_DATA log=$HERALD__PG_LOG

	if running=$(herald__pg_running "$data"); then
		read -r pid rport <<<"$running"
		if [[ "$rport" == "$port" ]]; then
			herald_warn "local Postgres (pid $pid) runs on port $port but does not answer; restarting it"
		else
			herald_info "local Postgres (pid $pid) runs on port $rport; restarting it on port $port"
		fi
		herald__pg_stop_dir "$data"
	fi

	if [[ -f "$data/PG_VERSION" ]]; then
		major=$(cat "$data/PG_VERSION")
		herald__pg_find_bins "$major" || herald_die "Postgres binaries vanished"
		bin_major=$(herald__pg_major "$HERALD__PG_CTL")
		if [[ -n "$bin_major" && "$bin_major" != "$major" ]]; then
			herald_die "$data was created by PostgreSQL $major, but the binaries found are version $bin_major. Install postgresql-$major, or remove $data (this deletes the local dev data) and run again."
		fi
	else
		if [[ -d "$data" ]] && [[ -n "$(ls -A "$data" 2>/dev/null)" ]]; then
			herald_die "$data exists but is not a Postgres data directory; remove it and run again"
		fi
		herald_info "creating a local Postgres cluster in $data (user $HERALD_PG_USER, trust auth, UTF8)..."
		mkdir -p "$data"
		chmod 0700 "$data"
		((EUID == 0)) && chown postgres: "$data"
		if ! herald__as_pg "$HERALD__INITDB" -D "$data" -U "$HERALD_PG_USER" --auth=trust -E UTF8 --no-locale \
			>"$HERALD__PG_BASE/initdb.log" 2>&1 </dev/null; then
			herald__log_tail "$HERALD__PG_BASE/initdb.log"
			herald_die "initdb failed (full output in $HERALD__PG_BASE/initdb.log)"
		fi
	fi

	# Unix socket next to the data, unless the path is too long for a socket.
	sock=$HERALD__PG_SOCKDIR
	if ((${#sock} + ${#port} + 12 > 100)); then
		sock=/tmp
	else
		mkdir -p "$sock"
		((EUID == 0)) && chown postgres: "$sock"
	fi
	touch "$log"
	((EUID == 0)) && chown postgres: "$log"

	case "$host" in
	localhost) listen=localhost ;;
	*) listen=$host ;;
	esac
	opts="-p $port -k $(herald__sh_quote "$sock") -c listen_addresses=$(herald__sh_quote "$listen") -c max_connections=200"

	herald_info "starting local Postgres on $host:$port (data $data, log $log)..."
	out=$HERALD__PG_BASE/pg_ctl.out
	if ! herald__as_pg "$HERALD__PG_CTL" -D "$data" -l "$log" -o "$opts" -w -t 60 start >"$out" 2>&1 </dev/null; then
		sed 's/^/    /' "$out" >&2 || true
		herald__log_tail "$log"
		herald_die "could not start Postgres on port $port (is the port taken by another program?)"
	fi
}

herald_ensure_postgres() {
	local host=$HERALD_PG_HOST port=$HERALD_PG_PORT installed=0 rc
	while :; do
		rc=0
		herald__pg_probe "$host" "$port" || rc=$?
		if ((rc == 0)); then
			break
		elif ((rc == 2)); then
			if ((HERALD__PG_PORT_EXPLICIT)) || [[ "$port" == "$HERALD_PG_FALLBACK_PORT" ]]; then
				herald_die "Postgres at $host:$port answers, but logging in as '$HERALD_PG_USER' fails: $HERALD__PG_PROBE_ERR
  Set HERALD_PG_USER / HERALD_PG_PASSWORD for that server, or point HERALD_PG_PORT at a free port to get a local Postgres started there."
			fi
			herald_warn "Postgres at $host:$port answers, but logging in as '$HERALD_PG_USER' fails ($HERALD__PG_PROBE_ERR); using a local Postgres on port $HERALD_PG_FALLBACK_PORT instead (set HERALD_PG_PORT to choose)"
			port=$HERALD_PG_FALLBACK_PORT
			continue
		fi
		# Not reachable: start a local one.
		herald__is_local_host "$host" ||
			herald_die "Postgres at $host:$port is not reachable, and $host is not this machine, so no local one can be started there. Fix HERALD_PG_HOST/HERALD_PG_PORT."
		if ! herald__pg_find_bins; then
			((installed)) && herald_die "installed postgresql, but still found no initdb/pg_ctl (looked in /usr/lib/postgresql/*/bin and PATH)"
			herald_info "Postgres is not reachable at $host:$port and its server binaries (initdb, pg_ctl) are not installed"
			herald__apt_install postgresql
			installed=1
			continue # the package may have started its own cluster: look again
		fi
		herald__pg_start_local "$host" "$port"
		rc=0
		herald__pg_probe "$host" "$port" || rc=$?
		((rc == 0)) && break
		herald__log_tail "$HERALD__PG_LOG"
		herald_die "started a local Postgres on $host:$port, but it is not usable${HERALD__PG_PROBE_ERR:+: $HERALD__PG_PROBE_ERR}"
	done
	HERALD_PG_RESOLVED_HOST=$host
	HERALD_PG_RESOLVED_PORT=$port
	herald_info "Postgres is up at $host:$port"
}

# postgres://user[:password]@host:port/DB
herald_pg_url() {
	local db=${1:-postgres} auth
	auth=$(herald__urlencode "$HERALD_PG_USER")
	[[ -n "$HERALD_PG_PASSWORD" ]] && auth+=":$(herald__urlencode "$HERALD_PG_PASSWORD")"
	printf 'postgres://%s@%s:%s/%s\n' "$auth" "$(herald__url_host "${HERALD_PG_RESOLVED_HOST:-$HERALD_PG_HOST}")" \
		"${HERALD_PG_RESOLVED_PORT:-$HERALD_PG_PORT}" "$db"
}

# ---------------------------------------------------------------------------
# NATS

# Probe host:port. Returns 0 NATS with JetStream, 1 unreachable, 2 something
# that is not NATS, 3 NATS whose INFO does not advertise JetStream.
herald__nats_probe() {
	local host=$1 port=$2 info rc
	# One connection: exit 10 = cannot connect, 11 = connected but no line.
	# shellcheck disable=SC2016 # expanded by the inner bash
	info=$(herald__timeout 6 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 10
		IFS= read -r -t 3 line <&3 || exit 11
		printf "%s\n" "$line"' _ "$host" "$port" 2>/dev/null) || {
		rc=$?
		((rc == 11)) && return 2
		return 1
	}
	[[ "$info" == INFO* ]] || return 2
	[[ "$info" == *'"jetstream":true'* ]] || return 3
	return 0
}

herald__nats_bin() {
	local p
	if p=$(command -v nats-server 2>/dev/null); then
		printf '%s\n' "$p"
	elif [[ -x /usr/sbin/nats-server ]]; then
		printf '%s\n' /usr/sbin/nats-server
	elif [[ -x /usr/local/sbin/nats-server ]]; then
		printf '%s\n' /usr/local/sbin/nats-server
	else
		return 1
	fi
}

HERALD__NATS_PIDFILE=$HERALD_STATE_DIR/nats.pid
HERALD__NATS_PORTFILE=$HERALD_STATE_DIR/nats.port
HERALD__NATS_LOG=$HERALD_STATE_DIR/nats.log
HERALD__NATS_DATA=$HERALD_STATE_DIR/nats

herald__is_nats_pid() {
	herald__pid_alive "$1" || return 1
	if [[ -r "/proc/$1/cmdline" ]]; then
		tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'nats-server'
	else
		ps -p "$1" -o comm= 2>/dev/null | grep -q 'nats-server'
	fi
}

# pid and port of our local NATS (fails if none runs).
herald__nats_running() {
	local pid port
	[[ -r "$HERALD__NATS_PIDFILE" ]] || return 1
	pid=$(head -n1 "$HERALD__NATS_PIDFILE" 2>/dev/null | tr -dc '0-9')
	herald__is_nats_pid "$pid" || return 1
	port=$(cat "$HERALD__NATS_PORTFILE" 2>/dev/null || echo '?')
	printf '%s %s\n' "$pid" "$port"
}

herald__nats_stop_local() {
	local running pid port i
	if ! running=$(herald__nats_running); then
		rm -f "$HERALD__NATS_PIDFILE" "$HERALD__NATS_PORTFILE"
		return 0
	fi
	read -r pid port <<<"$running"
	herald_info "stopping local NATS (pid $pid, port $port)..."
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 75; i++)); do # 15 s
		herald__pid_alive "$pid" || break
		sleep 0.2
	done
	if herald__pid_alive "$pid"; then
		herald_warn "NATS pid $pid did not stop in 15 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$HERALD__NATS_PIDFILE" "$HERALD__NATS_PORTFILE"
}

herald__nats_start_local() { # host port
	local host=$1 port=$2 bin running pid rport spid i rc
	bin=$(herald__nats_bin) || herald_die "nats-server not found"
	mkdir -p "$HERALD_STATE_DIR" "$HERALD__NATS_DATA"

	if running=$(herald__nats_running); then
		read -r pid rport <<<"$running"
		if [[ "$rport" == "$port" ]]; then
			herald_warn "local NATS (pid $pid) runs on port $port but does not answer; restarting it"
		else
			herald_info "local NATS (pid $pid) runs on port $rport; restarting it on port $port"
		fi
		herald__nats_stop_local
	fi
	rm -f "$HERALD__NATS_PIDFILE"

	local -a args=(-a "$host" -p "$port" -js -sd "$HERALD__NATS_DATA" --pid "$HERALD__NATS_PIDFILE" -l "$HERALD__NATS_LOG")
	herald_info "starting local NATS with JetStream on $host:$port (data $HERALD__NATS_DATA, log $HERALD__NATS_LOG)..."
	printf '%s\n' "$port" >"$HERALD__NATS_PORTFILE"
	# Own session (setsid): Ctrl-C in the terminal must not reach it. It must
	# hold none of our fds open either (a CI runner waits for those to close).
	local -a launch=(nohup)
	command -v setsid >/dev/null 2>&1 && launch=(setsid)
	(cd / && herald__close_fds && exec "${launch[@]}" "$bin" "${args[@]}" </dev/null >>"$HERALD__NATS_LOG" 2>&1) &
	spid=$!

	for ((i = 0; i < 100; i++)); do # 20 s, every 0.2 s
		rc=0
		herald__nats_probe "$host" "$port" || rc=$?
		((rc == 0)) && break
		if ! herald__pid_alive "$spid" && ! herald__nats_running >/dev/null; then
			herald__log_tail "$HERALD__NATS_LOG"
			rm -f "$HERALD__NATS_PORTFILE"
			herald_die "nats-server exited at start (is port $port taken by another program?)"
		fi
		sleep 0.2
	done
	if ((rc != 0)); then
		herald__log_tail "$HERALD__NATS_LOG"
		herald_die "nats-server did not answer on $host:$port within 20 s"
	fi
	# Should nats-server not have written its pid file (old version), keep ours.
	[[ -s "$HERALD__NATS_PIDFILE" ]] || printf '%s\n' "$spid" >"$HERALD__NATS_PIDFILE"
}

herald_ensure_nats() {
	local host=$HERALD_NATS_HOST port=$HERALD_NATS_PORT installed=0 rc why
	while :; do
		rc=0
		herald__nats_probe "$host" "$port" || rc=$?
		if ((rc == 0)); then
			break
		elif ((rc == 2 || rc == 3)); then
			if ((rc == 2)); then
				why="something answers on $host:$port, but it is not NATS"
			else
				why="the NATS server at $host:$port does not advertise JetStream"
			fi
			if ((rc == 3 && HERALD__NATS_PORT_EXPLICIT)); then
				herald_warn "$why; using it anyway as HERALD_NATS_PORT asks (Herald needs JetStream: run it with -js)"
				break
			fi
			if ((HERALD__NATS_PORT_EXPLICIT)) || [[ "$port" == "$HERALD_NATS_FALLBACK_PORT" ]]; then
				herald_die "$why. Point HERALD_NATS_PORT at a free port to get a local NATS started there."
			fi
			herald_warn "$why; using a local NATS on port $HERALD_NATS_FALLBACK_PORT instead (set HERALD_NATS_PORT to choose)"
			port=$HERALD_NATS_FALLBACK_PORT
			continue
		fi
		herald__is_local_host "$host" ||
			herald_die "NATS at $host:$port is not reachable, and $host is not this machine, so no local one can be started there. Fix HERALD_NATS_HOST/HERALD_NATS_PORT."
		if ! herald__nats_bin >/dev/null; then
			((installed)) && herald_die "installed nats-server, but still cannot find the nats-server binary"
			herald_info "NATS is not reachable at $host:$port and nats-server is not installed"
			herald__apt_install nats-server
			installed=1
			continue
		fi
		herald__nats_start_local "$host" "$port"
		break
	done
	HERALD_NATS_RESOLVED_HOST=$host
	HERALD_NATS_RESOLVED_PORT=$port
	herald_info "NATS is up at $host:$port"
}

herald_nats_url() {
	printf 'nats://%s:%s\n' "$(herald__url_host "${HERALD_NATS_RESOLVED_HOST:-$HERALD_NATS_HOST}")" \
		"${HERALD_NATS_RESOLVED_PORT:-$HERALD_NATS_PORT}"
}

# ---------------------------------------------------------------------------
# Entry points

# URL with any password replaced by ***, for printing.
herald_redact_url() {
	printf '%s\n' "$1" | sed -E 's#^([a-z]+://[^:/@]*):[^@/]*@#\1:***@#'
}

herald_ensure_services() {
	herald__lock
	herald_ensure_postgres
	herald_ensure_nats
	herald__unlock
}

herald_stop_services() {
	local d
	herald__lock
	while IFS= read -r d; do
		herald__pg_stop_dir "$d"
	done < <(herald__pg_candidate_dirs)
	herald__nats_stop_local
	herald__unlock
}

herald__status_pg_endpoint() { # port -> prints a line, returns probe rc
	local rc=0
	herald__pg_probe "$HERALD_PG_HOST" "$1" >/dev/null 2>&1 || rc=$?
	case $rc in
	0) printf '  %s:%s  reachable, login as %s works\n' "$HERALD_PG_HOST" "$1" "$HERALD_PG_USER" ;;
	1) printf '  %s:%s  not reachable\n' "$HERALD_PG_HOST" "$1" ;;
	*) printf '  %s:%s  reachable, but login as %s fails: %s\n' "$HERALD_PG_HOST" "$1" "$HERALD_PG_USER" "$HERALD__PG_PROBE_ERR" ;;
	esac
	return "$rc"
}

herald__status_nats_endpoint() {
	local rc=0
	herald__nats_probe "$HERALD_NATS_HOST" "$1" || rc=$?
	case $rc in
	0) printf '  %s:%s  reachable, JetStream on\n' "$HERALD_NATS_HOST" "$1" ;;
	1) printf '  %s:%s  not reachable\n' "$HERALD_NATS_HOST" "$1" ;;
	2) printf '  %s:%s  something answers, but it is not NATS\n' "$HERALD_NATS_HOST" "$1" ;;
	*) printf '  %s:%s  NATS, but JetStream is not advertised\n' "$HERALD_NATS_HOST" "$1" ;;
	esac
	return "$rc"
}

# Prints the state of both services; returns 0 when both are usable (at the
# configured port, or at the fallback port when that would be used).
herald_services_status() {
	local result=0 rc d running pid port found=0
	echo "Postgres:"
	rc=0
	herald__status_pg_endpoint "$HERALD_PG_PORT" || rc=$?
	if ((rc == 2 && !HERALD__PG_PORT_EXPLICIT)); then
		rc=0
		herald__status_pg_endpoint "$HERALD_PG_FALLBACK_PORT" || rc=$?
	fi
	((rc == 0)) || result=1
	while IFS= read -r d; do
		if running=$(herald__pg_running "$d"); then
			read -r pid port <<<"$running"
			printf '  local server started by herald scripts: running, pid %s, port %s, data %s\n' "$pid" "$port" "$d"
			found=1
		elif [[ -f "$d/PG_VERSION" ]]; then
			printf '  local server started by herald scripts: stopped (data %s)\n' "$d"
			found=1
		fi
	done < <(herald__pg_candidate_dirs)
	((found)) || printf '  local server started by herald scripts: none\n'

	echo "NATS:"
	rc=0
	herald__status_nats_endpoint "$HERALD_NATS_PORT" || rc=$?
	if ((rc >= 2 && !HERALD__NATS_PORT_EXPLICIT)); then
		rc=0
		herald__status_nats_endpoint "$HERALD_NATS_FALLBACK_PORT" || rc=$?
	fi
	((rc == 0)) || result=1
	if running=$(herald__nats_running); then
		read -r pid port <<<"$running"
		printf '  local server started by herald scripts: running, pid %s, port %s, data %s\n' "$pid" "$port" "$HERALD__NATS_DATA"
	else
		printf '  local server started by herald scripts: none\n'
	fi
	return "$result"
}

# Make sure cargo is on PATH (rustup puts it in ~/.cargo/bin).
herald_require_cargo() {
	command -v cargo >/dev/null 2>&1 && return 0
	local d
	for d in "${CARGO_HOME:-}" "${HOME:-}/.cargo"; do
		if [[ -n "$d" && -x "$d/bin/cargo" ]]; then
			PATH="$d/bin:$PATH"
			export PATH
			return 0
		fi
	done
	herald_die "the Rust toolchain (cargo) was not found on PATH or in ~/.cargo/bin.
  This script cannot install it. Install Rust $(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$HERALD_REPO_ROOT/Cargo.toml" | head -n1) or newer with rustup (https://rustup.rs), including the rustfmt and clippy components, then run this again."
}

# ---------------------------------------------------------------------------
# A three-node NATS cluster for development (scripts/services cluster ...)
#
#   HERALD_NATS_CLUSTER_PORT  client port of the first node; the others follow (4231)

HERALD_NATS_CLUSTER_PORT=${HERALD_NATS_CLUSTER_PORT:-4231}
herald__check_port HERALD_NATS_CLUSTER_PORT "$HERALD_NATS_CLUSTER_PORT"
HERALD__CLUSTER_DIR=$HERALD_STATE_DIR/cluster

# The client URLs of the three nodes, comma-separated, as nats.url takes them.
herald_cluster_url() {
	local i urls=()
	for i in 0 1 2; do urls+=("nats://127.0.0.1:$((HERALD_NATS_CLUSTER_PORT + i))"); done
	(
		IFS=,
		printf '%s\n' "${urls[*]}"
	)
}

herald_cluster_start() {
	local bin i port routes node pid
	bin=$(herald__nats_bin) || {
		herald__apt_install nats-server
		bin=$(herald__nats_bin) || herald_die "installed nats-server, but cannot find it"
	}
	routes=""
	for i in 0 1 2; do
		routes+="${routes:+,}nats://127.0.0.1:$((HERALD_NATS_CLUSTER_PORT + 2000 + i))"
	done
	for i in 0 1 2; do
		node=$HERALD__CLUSTER_DIR/n$((i + 1))
		port=$((HERALD_NATS_CLUSTER_PORT + i))
		mkdir -p "$node"
		if [[ -s "$node/pid" ]] && herald__pid_alive "$(cat "$node/pid")"; then
			herald_info "cluster node n$((i + 1)) already runs (port $port)"
			continue
		fi
		herald__tcp_open 127.0.0.1 "$port" && herald_die "port $port is taken; set HERALD_NATS_CLUSTER_PORT"
		herald_info "starting NATS cluster node n$((i + 1)) on 127.0.0.1:$port (data $node)..."
		(cd / && herald__close_fds && exec setsid "$bin" -a 127.0.0.1 -p "$port" -js \
			--server_name "n$((i + 1))" -sd "$node/store" --cluster_name herald \
			--cluster "nats://127.0.0.1:$((port + 2000))" --routes "$routes" \
			</dev/null >>"$node/nats.log" 2>&1) &
		pid=$!
		printf '%s\n' "$pid" >"$node/pid"
	done
	for i in 0 1 2; do
		port=$((HERALD_NATS_CLUSTER_PORT + i))
		for ((n = 0; n < 100; n++)); do # 20 s
			herald__nats_probe 127.0.0.1 "$port" && break
			sleep 0.2
		done
		herald__nats_probe 127.0.0.1 "$port" || herald_die "cluster node on port $port did not answer; see $HERALD__CLUSTER_DIR/n$((i + 1))/nats.log"
	done
}

herald_cluster_stop() {
	local node pid
	for node in "$HERALD__CLUSTER_DIR"/n*; do
		[[ -s "$node/pid" ]] || continue
		pid=$(cat "$node/pid")
		if herald__pid_alive "$pid"; then
			herald_info "stopping cluster node $(basename "$node") (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
		fi
		rm -f "$node/pid"
	done
}
