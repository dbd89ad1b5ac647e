# Test services, for bash scripts to source: each is installed once into a cache directory
# (idempotently), started on a free 127.0.0.1 port (the server binds port 0 and says which one
# it got, so suites running side by side never collide), its address exported to the tests in
# MEDIASPOOL_TEST_* variables, and stopped when the sourcing script exits.
#
#   source scripts/services.sh
#   service_start s3        # moto server mode (PyPI, in a venv) + awscli
#   service_start azurite   # Azurite's blob service (npm)
#   service_start postgres  # PostgreSQL (Debian's packages), a throwaway cluster
#
# A new service NAME is two functions: NAME_install (idempotent, under $SERVICES_CACHE) and
# NAME_start (starts the server in the background with service_spawn, reads its port with
# service_port, exports what the tests need). Its data goes under $SERVICES_RUN, removed at exit.

SERVICES_CACHE=${MEDIASPOOL_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mediaspool-test}
SERVICES_RUN=$(mktemp -d -t mediaspool-services.XXXXXX)
_service_pids=()

services_stop() {
  local pid
  for pid in "${_service_pids[@]}"; do
    kill -CONT "$pid" 2>/dev/null || true   # a test may have left it stopped
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${_service_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  _service_pids=()
  rm -rf "$SERVICES_RUN"
}
trap services_stop EXIT

# service_start NAME: installs if needed, then starts.
service_start() {
  "$1_install"
  "$1_start"
}

# service_spawn NAME COMMAND...: runs COMMAND in the background, output in $SERVICES_RUN/NAME.log.
service_spawn() {
  local name=$1
  shift
  "$@" >"$SERVICES_RUN/$name.log" 2>&1 &
  _service_pids+=($!)
  SERVICE_PID=$!
}

# service_port NAME: waits (up to 60 s) for "http://127.0.0.1:PORT" in the service's log and
# prints PORT; fails loudly with the log if the server dies or never says.
service_port() {
  local name=$1 log="$SERVICES_RUN/$1.log" port
  for _ in $(seq 600); do
    port=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$log" 2>/dev/null | head -1 | sed 's/.*://')
    if [ -n "$port" ] && [ "$port" != 0 ]; then
      echo "$port"
      return 0
    fi
    if ! kill -0 "$SERVICE_PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "test service $name did not start:" >&2
  cat "$log" >&2
  return 1
}

# Debian packages a service needs, installed when missing.
service_debian() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- S3: moto's server mode, and awscli for the benchmark's baseline -------------------------

s3_install() {
  local venv="$SERVICES_CACHE/venv"
  [ -x "$venv/bin/moto_server" ] && [ -x "$venv/bin/aws" ] && return 0
  command -v python3 >/dev/null && python3 -m venv --help >/dev/null 2>&1 || service_debian python3 python3-venv
  echo "installing moto[server] and awscli into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6' 'awscli>=1.36,<2'
}

s3_start() {
  local venv="$SERVICES_CACHE/venv"
  service_spawn s3 "$venv/bin/moto_server" -H 127.0.0.1 -p 0
  local port
  port=$(service_port s3) || return 1
  export MEDIASPOOL_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  # Tests that stop or restart a server start their own from this.
  export MEDIASPOOL_TEST_MOTO_SERVER="$venv/bin/moto_server"
  export MEDIASPOOL_TEST_AWS_CLI="$venv/bin/aws"
}

# --- Azure Blob: Azurite ---------------------------------------------------------------------

azurite_install() {
  local dir="$SERVICES_CACHE/azurite"
  [ -x "$dir/node_modules/.bin/azurite-blob" ] && return 0
  command -v npm >/dev/null || service_debian nodejs npm
  echo "installing azurite into $dir" >&2
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
  (cd "$dir" && npm install --silent --no-audit --no-fund 'azurite@^3.33')
}

azurite_start() {
  local bin="$SERVICES_CACHE/azurite/node_modules/.bin/azurite-blob"
  service_spawn azurite "$bin" --blobHost 127.0.0.1 --blobPort 0 --inMemoryPersistence \
    --skipApiVersionCheck --disableTelemetry --loose
  local port
  port=$(service_port azurite) || return 1
  # Path-style: the account is the first path segment. Its key is Azurite's well-known one.
  export MEDIASPOOL_TEST_AZURE_ENDPOINT="http://127.0.0.1:$port/devstoreaccount1"
  export MEDIASPOOL_TEST_AZURITE="$bin"
}

# --- PostgreSQL: Debian's server, a throwaway cluster ------------------------------------------

postgres_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

postgres_install() {
  local bin
  bin=$(postgres_bin)
  [ -n "$bin" ] && [ -x "$bin/initdb" ] && return 0
  service_debian postgresql
}

# initdb refuses to run as root: as root, the server runs as the packages' postgres user.
_postgres_as=()
if [ "$(id -u)" -eq 0 ]; then
  _postgres_as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

postgres_start() {
  local bin dir port
  bin=$(postgres_bin)
  dir="$SERVICES_RUN/postgres"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chmod 711 "$SERVICES_RUN"
    chown postgres "$dir"
  fi
  "${_postgres_as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync \
    >"$SERVICES_RUN/postgres-initdb.log" 2>&1 || { cat "$SERVICES_RUN/postgres-initdb.log" >&2; return 1; }
  # PostgreSQL cannot bind port 0 and say which it got: a free port is picked, and another one
  # if something took it first. SIGTERM would wait for every client to leave: the wrapper turns
  # it into a fast shutdown.
  for _ in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    service_spawn postgres "${_postgres_as[@]}" bash -c \
      'trap "kill -INT \$server" TERM; "$@" & server=$!; wait $server; wait $server' postgres \
      "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
      -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300
    for _ in $(seq 600); do
      if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        export MEDIASPOOL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
        # Tests that stop and restart a server run their own with these.
        export MEDIASPOOL_TEST_PG_BIN="$bin"
        export MEDIASPOOL_TEST_PG_USER="$([ "$(id -u)" -eq 0 ] && echo postgres || id -un)"
        # The server's log (benchmarks count the statements it logs).
        export MEDIASPOOL_TEST_POSTGRES_LOG="$SERVICES_RUN/postgres.log"
        return 0
      fi
      kill -0 "$SERVICE_PID" 2>/dev/null || break
      sleep 0.1
    done
  done
  echo "test service postgres did not start:" >&2
  cat "$SERVICES_RUN/postgres.log" >&2
  return 1
}
