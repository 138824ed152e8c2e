#!/usr/bin/env bash
# `play` for aarch64 (64-bit Raspberry Pi OS / Debian arm64), cross-built on an x86-64 Debian
# bookworm machine and run there under qemu user-mode emulation.
#
# Usage: scripts/aarch64.sh setup | build | check | run [PLAY ARGS...] | requirements
#   setup         installs what the cross build and qemu need, idempotently (a second run with
#                 everything in place does nothing and reaches no network):
#                 - with apt, into the system (sudo when not root): the cross compilers
#                   gcc/g++-aarch64-linux-gnu (which bring the arm64 glibc and libstdc++ under
#                   /usr/aarch64-linux-gnu) and the runtime libraries of Debian's LLVM;
#                 - unpacked with `dpkg-deb -x` into AARCH64_DIR, never installed, so the
#                   machine's own apt and dpkg state and its rustup toolchain are untouched:
#                   Debian's rustc-web with its x86-64 and arm64 standard libraries and
#                   libllvm (rustup's `target add` needs rustup's servers; a rustc must use a
#                   standard library of its own exact version), zlib and the X11 client
#                   libraries for arm64, and qemu-user from bookworm-backports (bookworm's
#                   qemu 7.2 crashes loading libonnxruntime). Those packages are found through
#                   a private apt configuration (AARCH64_DIR/apt) that adds the arm64
#                   architecture and bookworm-backports;
#                 - from PyPI, with the project's .venv pip (`make venv` makes it): the
#                   manylinux aarch64 wheels of the onnxruntime and ale-py versions pinned in
#                   requirements.txt, from which libonnxruntime.so and the ROMs are unpacked.
#   build         cargo build --release --locked -p cartridge-infer --bin play --target
#                 aarch64-unknown-linux-gnu with the unpacked rustc (cargo is the machine's);
#                 the binary is target/aarch64-unknown-linux-gnu/release/play.
#   check         exits 0 when the binary, qemu, the aarch64 libonnxruntime and the ROMs are
#                 all in place; otherwise names what is missing and how to get it, and exits 1.
#   run ARGS      runs the aarch64 `play ARGS` under qemu-aarch64 with the arm64 glibc and
#                 libstdc++ of /usr/aarch64-linux-gnu, the unpacked arm64 zlib and X11
#                 libraries, ORT_DYLIB_PATH set to the aarch64 libonnxruntime and ALE_ROM_DIR
#                 (unless already set) to the aarch64 ale-py wheel's ROMs. Its exit status and
#                 output are play's.
#   run-binary EXE ARGS  the same for any aarch64 executable (cargo's target runner in `build`).
#   requirements  prints the glibc and libstdc++ symbol versions and the shared libraries the
#                 binary needs on the target machine.
#
# Environment:
#   AARCH64_DIR    the private folder (default: ${XDG_CACHE_HOME:-$HOME/.cache}/cartridge/aarch64)
#   DEBIAN_MIRROR  default: http://deb.debian.org (its /debian and /debian-security)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=aarch64-unknown-linux-gnu
PLAY="$ROOT/target/$TARGET/release/play"
DIR=${AARCH64_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cartridge/aarch64}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org}
SYSROOT=/usr/aarch64-linux-gnu
VENV_PY="$ROOT/.venv/bin/python"
# Bump when the set of unpacked packages changes, so `setup` redoes an older folder.
LAYOUT=1

# System packages (bookworm main): the cross compilers, and what Debian's libLLVM links.
SYS_PKGS=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libedit2 libffi8 libxml2 libz3-4 libzstd1)
# arm64 libraries play needs at link time (zlib) and for a window under qemu (minifb loads
# libX11 and libXcursor at run time, with their dependencies).
ARM64_PKGS=(zlib1g zlib1g-dev libx11-6 libxcursor1 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0
  libxrender1 libxfixes3 libxext6)

die() {
  echo "error: $*" >&2
  exit 1
}

ort_lib() { ls "$DIR"/wheels/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | sort -V | tail -n 1; }

pin() { # the version requirements.txt pins for a PyPI package
  sed -n "s/^$1==\([^ #]*\).*/\1/p" "$ROOT/requirements.txt"
}

apt_private() { APT_CONFIG="$DIR/apt/apt.conf" "$@"; }

write_apt_config() {
  local a="$DIR/apt"
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/preferences.d" "$a/debs"
  local key="signed-by=/usr/share/keyrings/debian-archive-keyring.gpg"
  cat >"$a/sources.list" <<EOF
deb [$key] $MIRROR/debian bookworm main
deb [$key] $MIRROR/debian bookworm-updates main
deb [$key] $MIRROR/debian-security bookworm-security main
deb [$key] $MIRROR/debian bookworm-backports main
EOF
  cat >"$a/apt.conf" <<EOF
APT::Architecture "amd64";
APT::Architectures { "amd64"; "arm64"; };
APT::Sandbox::User "$(id -un)";
Dir::State "$a";
Dir::State::Lists "$a/lists";
Dir::State::status "/var/lib/dpkg/status";
Dir::Cache "$a/cache";
Dir::Etc::SourceList "$a/sources.list";
Dir::Etc::SourceParts "/nonexistent";
Dir::Etc::Preferences "/nonexistent";
Dir::Etc::PreferencesParts "$a/preferences.d";
EOF
}

install_system_packages() {
  local missing=() p sudo=
  for p in "${SYS_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

# Downloads each named package (name, name:arch or name/suite) into the private debs folder
# and unpacks it into $1.
download_unpack() {
  local into=$1 f
  shift
  (cd "$DIR/apt/debs" && rm -f ./*.deb && apt_private apt-get download -qq "$@") ||
    die "apt-get download $* failed (private apt configuration $DIR/apt/apt.conf)"
  mkdir -p "$into"
  for f in "$DIR"/apt/debs/*.deb; do dpkg-deb -x "$f" "$into"; done
  rm -f "$DIR"/apt/debs/*.deb
}

setup() {
  local stamp="$DIR/.setup-$LAYOUT-ort$(pin onnxruntime)-ale$(pin ale-py)"
  install_system_packages
  if [ -f "$stamp" ] && [ -x "$DIR/bin/rustc" ] && [ -x "$DIR/bin/qemu-aarch64" ] && [ -n "$(ort_lib)" ]; then
    return
  fi
  [ -x "$VENV_PY" ] || die "$VENV_PY is missing: run \`make venv\` first (the aarch64 wheels are downloaded with its pip)"
  echo "setting up the aarch64 toolchain, qemu and libraries in $DIR"
  # Start from an empty folder, but never empty one this script did not make.
  if [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ] && [ ! -f "$DIR/.cartridge-aarch64" ]; then
    die "$DIR exists and was not made by scripts/aarch64.sh: remove it or set AARCH64_DIR"
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR/bin"
  touch "$DIR/.cartridge-aarch64"
  write_apt_config
  apt_private apt-get update -qq || die "apt-get update with $DIR/apt/apt.conf failed"

  # rustc-web and its standard libraries must be one version: take rustc-web's candidate.
  local rv llvm
  rv=$(apt_private apt-cache policy rustc-web | sed -n 's/^ *Candidate: //p')
  [ -n "$rv" ] && [ "$rv" != "(none)" ] || die "no rustc-web package in bookworm-security"
  local series=${rv%%+*}        # 1.96.0
  series=${series%.*}           # 1.96
  llvm=$(apt_private apt-cache depends "libstd-rust-web-$series=$rv" | sed -n 's/^ *Depends: \(libllvm[0-9]*\)$/\1/p' | head -n 1)
  [ -n "$llvm" ] || die "cannot tell which libllvm libstd-rust-web-$series=$rv needs"
  download_unpack "$DIR/host" "rustc-web=$rv" "libstd-rust-web-$series=$rv" \
    "libstd-rust-web-dev=$rv" "libstd-rust-web-dev:arm64=$rv" "$llvm"

  # qemu-user >= 10 (bookworm-backports; static binaries for every architecture): keep aarch64.
  (cd "$DIR/apt/debs" && rm -f ./*.deb && apt_private apt-get download -qq qemu-user/bookworm-backports) ||
    die "cannot download qemu-user from bookworm-backports"
  dpkg-deb --fsys-tarfile "$DIR"/apt/debs/qemu-user_*.deb | tar -x -C "$DIR" ./usr/bin/qemu-aarch64
  mv "$DIR/usr/bin/qemu-aarch64" "$DIR/bin/qemu-aarch64"
  rm -rf "$DIR/usr" "$DIR"/apt/debs/*.deb

  local p arm=()
  for p in "${ARM64_PKGS[@]}"; do arm+=("$p:arm64"); done
  download_unpack "$DIR/arm64" "${arm[@]}"
  # Absolute links (zlib1g-dev's libz.so -> /lib/aarch64-linux-gnu/...) point into the folder.
  local l
  while IFS= read -r l; do
    ln -sfn "$DIR/arm64$(readlink "$l")" "$l"
  done < <(find "$DIR/arm64" -type l -lname '/*')

  # rustc finds its sysroot (lib/rustlib/<target>) from its own path; it needs its
  # librustc_driver and libLLVM on the library path.
  cat >"$DIR/bin/rustc" <<'EOF'
#!/bin/sh
d=$(dirname "$(readlink -f "$0")")/../host/usr
LD_LIBRARY_PATH="$d/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$d/bin/rustc" "$@"
EOF
  chmod +x "$DIR/bin/rustc"
  "$DIR/bin/rustc" --version >/dev/null || die "the unpacked rustc does not run: $("$DIR/bin/rustc" --version 2>&1)"
  [ -d "$DIR/host/usr/lib/rustlib/$TARGET/lib" ] || die "no $TARGET standard library in libstd-rust-web-dev:arm64"

  # The aarch64 wheels of requirements.txt's onnxruntime and ale-py: libonnxruntime and ROMs.
  local ort ale
  ort=$(pin onnxruntime) ale=$(pin ale-py)
  [ -n "$ort" ] && [ -n "$ale" ] || die "requirements.txt pins no onnxruntime==X or ale-py==Y"
  "$VENV_PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp \
    -d "$DIR/wheels/dl" "onnxruntime==$ort" "ale-py==$ale" || die "pip download of the aarch64 wheels failed"
  "$VENV_PY" - "$DIR/wheels" "$DIR"/wheels/dl/*.whl <<'EOF'
import sys, zipfile
out = sys.argv[1]
for whl in sys.argv[2:]:
    with zipfile.ZipFile(whl) as z:
        for n in z.namelist():
            if n.startswith("onnxruntime/capi/libonnxruntime.so") or (
                n.startswith("ale_py/roms/") and n.endswith(".bin")
            ):
                z.extract(n, out)
EOF
  rm -rf "$DIR/wheels/dl"
  [ -n "$(ort_lib)" ] || die "no libonnxruntime.so in the onnxruntime $ort aarch64 wheel"
  [ -f "$DIR/wheels/ale_py/roms/breakout.bin" ] || die "no ROMs in the ale-py $ale aarch64 wheel"
  "$DIR/bin/qemu-aarch64" --version | head -n 1
  "$DIR/bin/rustc" --version
  touch "$stamp"
}

build() {
  [ -x "$DIR/bin/rustc" ] || die "no aarch64 toolchain in $DIR: run \`scripts/aarch64.sh setup\` (or \`make play-aarch64\`)"
  command -v aarch64-linux-gnu-gcc >/dev/null || die "aarch64-linux-gnu-gcc is missing: run \`scripts/aarch64.sh setup\`"
  local inc="-isystem $DIR/arm64/usr/include"
  local t=${TARGET//-/_}
  # PKG_CONFIG_ALLOW_CROSS stays unset: x11-dl would otherwise record the host's library paths.
  cd "$ROOT"
  env RUSTC="$DIR/bin/rustc" \
    "CARGO_TARGET_${t^^}_LINKER=aarch64-linux-gnu-gcc" \
    "CARGO_TARGET_${t^^}_RUSTFLAGS=-L native=$DIR/arm64/usr/lib/aarch64-linux-gnu -L native=$DIR/arm64/lib/aarch64-linux-gnu" \
    "CARGO_TARGET_${t^^}_RUNNER=$ROOT/scripts/aarch64.sh run-binary" \
    "CC_$t=aarch64-linux-gnu-gcc" "CXX_$t=aarch64-linux-gnu-g++" \
    "CFLAGS_$t=$inc" "CXXFLAGS_$t=$inc" \
    cargo build --release --locked -p cartridge-infer --bin play --target "$TARGET"
  file_is_aarch64 "$PLAY" || die "$PLAY is not an aarch64 ELF executable"
}

file_is_aarch64() { # ELF e_machine (offset 18, little-endian) is 183 (EM_AARCH64)
  [ -f "$1" ] && [ "$(od -An -tu2 -j18 -N2 "$1" | tr -d ' ')" = 183 ]
}

check() {
  local bad=0
  [ -x "$DIR/bin/qemu-aarch64" ] || { echo "missing: qemu-aarch64 ($DIR/bin): run \`make play-aarch64\` or \`scripts/aarch64.sh setup\`" >&2; bad=1; }
  [ -n "$(ort_lib)" ] || { echo "missing: the aarch64 libonnxruntime ($DIR/wheels): run \`make play-aarch64\` or \`scripts/aarch64.sh setup\`" >&2; bad=1; }
  [ -d "$DIR/wheels/ale_py/roms" ] || { echo "missing: the ROMs of the aarch64 ale-py wheel ($DIR/wheels): run \`make play-aarch64\` or \`scripts/aarch64.sh setup\`" >&2; bad=1; }
  [ -d "$SYSROOT/lib" ] || { echo "missing: the arm64 glibc in $SYSROOT (gcc-aarch64-linux-gnu): run \`scripts/aarch64.sh setup\`" >&2; bad=1; }
  file_is_aarch64 "$PLAY" || { echo "missing: the aarch64 play ($PLAY): run \`make play-aarch64\` or \`scripts/aarch64.sh build\`" >&2; bad=1; }
  return $bad
}

# Runs an aarch64 executable under qemu with the arm64 libraries and play's run-time files.
run_binary() {
  exec "$DIR/bin/qemu-aarch64" -L "$SYSROOT" \
    -E "LD_LIBRARY_PATH=$DIR/arm64/lib/aarch64-linux-gnu:$DIR/arm64/usr/lib/aarch64-linux-gnu" \
    -E "ORT_DYLIB_PATH=$(ort_lib)" \
    -E "ALE_ROM_DIR=${ALE_ROM_DIR:-$DIR/wheels/ale_py/roms}" \
    "$@"
}

requirements() {
  file_is_aarch64 "$PLAY" || die "no aarch64 play at $PLAY: run \`make play-aarch64\`"
  local dump
  dump=$(aarch64-linux-gnu-objdump -T -p "$PLAY")
  echo "NEEDED: $(echo "$dump" | sed -n 's/^ *NEEDED *//p' | tr '\n' ' ')"
  for v in GLIBC GLIBCXX CXXABI GCC; do
    echo "$v: $(echo "$dump" | grep -o "(${v}_[0-9.]*)" | tr -d '()' | sort -uV | tail -n 1)"
  done
}

case "${1:-}" in
  setup) setup ;;
  build) build ;;
  check) check ;;
  run)
    shift
    check || exit 1
    run_binary "$PLAY" "$@"
    ;;
  run-binary)
    shift
    run_binary "$@"
    ;;
  requirements) requirements ;;
  *) die "usage: scripts/aarch64.sh setup | build | check | run [PLAY ARGS...] | requirements" ;;
esac
