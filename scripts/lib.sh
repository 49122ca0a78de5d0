# capstan: shell helpers shared by scripts/run and scripts/test (sourced, not run).

# Debian packages to build and run capstan, and the extra ones the tests use.
CAPSTAN_BUILD_PACKAGES="gcc make cmake pkg-config git ca-certificates libmicrohttpd-dev libjansson-dev
  libpq-dev libcurl4-openssl-dev libgit2-dev libyaml-dev libssl-dev postgresql curl"
CAPSTAN_TEST_PACKAGES="libcmocka-dev python3 python3-yaml python3-jsonschema lighttpd clang
  libclang-rt-14-dev clang-format clang-tidy openssl iproute2"
# Node.js and npm (for the OpenAPI linter) only when the commands are missing: a machine may
# have them from elsewhere (nodesource's nodejs bundles npm and conflicts with Debian's npm).
command -v node >/dev/null 2>&1 || CAPSTAN_TEST_PACKAGES="$CAPSTAN_TEST_PACKAGES nodejs"
command -v npm >/dev/null 2>&1 || CAPSTAN_TEST_PACKAGES="$CAPSTAN_TEST_PACKAGES npm"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_packages PKG...: installs what is missing (apt-get as root; otherwise prints the one
# sudo line and stops).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "Some Debian packages are missing. Install them, then run this again:"
    echo "  sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
}

# The newest PostgreSQL server binaries of Debian's packages.
pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
  echo "$d"
}

# as_pg CMD...: runs CMD as the unprivileged user when we are root (PostgreSQL refuses root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# cmake_build DIR [CMAKE ARGS...]: configures (once) and builds.
cmake_build() {
  local dir=$1; shift
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S . -B "$dir" "$@" >/dev/null || die "cmake configure of $dir failed"
  fi
  cmake --build "$dir" -j "$(nproc)" >"$dir/build.log" 2>&1 || { tail -n 40 "$dir/build.log"; die "build of $dir failed (see $dir/build.log)"; }
}
