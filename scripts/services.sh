# Test services, for bash scripts to source: each is installed once into a cache directory
# (idempotently), started on a free 127.0.0.1 port (the server binds port 0 and says which one
# it got, so suites running side by side never collide), its address exported to the tests in
# MEDIASPOOL_TEST_* variables, and stopped when the sourcing script exits.
#
#   source scripts/services.sh
#   service_start s3        # moto server mode (PyPI, in a venv) + awscli
#   service_start azurite   # Azurite's blob service (npm)
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
