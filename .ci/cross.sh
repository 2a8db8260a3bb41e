#!/usr/bin/env bash
# .ci/cross.sh — portability checks (README "Portability"), called by .ci/run on a fresh Debian 12 machine:
#   .ci/cross.sh aarch64   cross-build everything for arm64 and run the whole release suite under qemu-user
#                          (`make cross-aarch64`, i.e. tests/run.sh as natively) with DSV4_TEST_QEMU=1 (the heaviest
#                          tests at a reduced size, each reduction printed) and DSV4_TEST_JOBS=2 (two test binaries at
#                          a time); DSV4_TEST_QEMU=0 runs the full sizes (about an hour of CPU)
#   .ci/cross.sh riscv64   cross-build the library and tests for riscv64 and run the kernel, op, IO and config tests
#                          (Makefile RV_TESTS) under qemu-user
#                          (`make cross-riscv64`; the golden tests run only the slow scalar path there: README)
#   .ci/cross.sh strict    native builds with `-std=c11 -pedantic -Werror` (gcc) and with clang (-Werror), all
#                          targets and test binaries; the clang build then runs test_kernels and test_threads
# Prints how long each step took. Installs what it needs (root, apt) unless it is there already.
#
# Dependencies. aarch64: Debian's cross compiler and the project's libraries as :arm64 multiarch packages
# (CROSS_DEV_PKGS: add a new library's -dev package there when the Makefile links it). The binaries run under
# `qemu-aarch64 -L /`, i.e. with the :arm64 multiarch C library (the loader of the cross toolchain's own copy,
# libc6-arm64-cross, is a different build, and mixing the two deadlocks pthread_create).
# riscv64: Debian 12 has no riscv64 packages, so cJSON and PCRE2 (all the kernel and golden tests link) are built
# from Debian's source packages (`apt-get source`, a deb-src entry is added) into build/cross-riscv64-deps; the
# server (libmicrohttpd), the CLI (libedit) and engram (utf8proc) are not built there.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
CROSS_DEV_PKGS="libcjson-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev libedit-dev libjpeg-dev libpng-dev"
CROSS_BUILD=${CROSS_BUILD:-build/cross}
JOBS=${JOBS:-2}

step() {   # step NAME command... : run, print the time it took
    local name=$1; shift
    local t0=$SECONDS
    echo "== cross.sh: $name"
    "$@"
    echo "== cross.sh: $name took $((SECONDS - t0)) s"
}

apt_install() {   # install the packages that are not installed yet
    local missing=() p
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_aarch64() {
    dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; apt-get update -qq; }
    local pkgs=(gcc-aarch64-linux-gnu qemu-user) p
    for p in $CROSS_DEV_PKGS; do pkgs+=("$p:arm64"); done
    apt_install "${pkgs[@]}"
}

setup_riscv64() {
    apt_install gcc-riscv64-linux-gnu libc6-dev-riscv64-cross qemu-user dpkg-dev   # libc headers: only a Recommends
    local deps=$CROSS_BUILD-riscv64-deps
    [ -f "$deps/lib/libcjson.a" ] && [ -f "$deps/lib/libpcre2-8.a" ] && return 0
    if [ ! -f /etc/apt/sources.list.d/dsv4-cross-src.sources ]; then
        printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            > /etc/apt/sources.list.d/dsv4-cross-src.sources
        apt-get update -qq
    fi
    local src; src=$(mktemp -d /tmp/dsv4-rvsrc.XXXXXX)
    mkdir -p "$deps/include/cjson" "$deps/lib"
    deps=$(cd "$deps" && pwd)
    (cd "$src" && apt-get source -qq cjson pcre2 >/dev/null 2>&1)
    # cJSON: one source file
    riscv64-linux-gnu-gcc -O2 -c -o "$src/cJSON.o" "$src"/cjson-*/cJSON.c
    riscv64-linux-gnu-ar rcs "$deps/lib/libcjson.a" "$src/cJSON.o"
    cp "$src"/cjson-*/cJSON.h "$deps/include/cjson/"
    # PCRE2: the 8-bit library only, static, no JIT (the tokenizer uses the interpreter then)
    (cd "$src"/pcre2-*/ && ./configure -q --host=riscv64-linux-gnu --prefix="$deps" --disable-shared --enable-static \
        --disable-pcre2grep-libz --disable-pcre2grep-libbz2 >/dev/null && make -s -j"$JOBS" libpcre2-8.la >/dev/null 2>&1 \
        && cp .libs/libpcre2-8.a "$deps/lib/" && cp src/pcre2.h "$deps/include/")
    rm -rf "$src"
}

strict_builds() {
    local t
    local tests=(); for t in tests/test_*.c; do t=${t#tests/}; tests+=("${t%.c}"); done
    apt_install clang
    local b=$CROSS_BUILD-pedantic   # (not `all`: that would point ./dsv4 at this build)
    make -s -j"$JOBS" BUILD="$b" OPT="-O2 -pedantic -Werror" "$b/dsv4" "$b/tools/make_flash_ckpt" "${tests[@]/#/$b/tests/}"
    b=$CROSS_BUILD-clang
    make -s -j"$JOBS" BUILD="$b" CC=clang OPT="-O2 -Werror" "$b/dsv4" "$b/tools/make_flash_ckpt" "${tests[@]/#/$b/tests/}"
    DSV4_TESTS_ONLY=1 ./tests/run.sh "$CROSS_BUILD-clang/tests/test_kernels" "$CROSS_BUILD-clang/tests/test_threads"
}

case "${1:-}" in
aarch64)
    step "aarch64 setup (cross gcc, qemu-user, :arm64 libraries)" setup_aarch64
    b=$CROSS_BUILD-aarch64
    tests=(); for t in tests/test_*.c; do t=${t#tests/}; tests+=("$b/tests/${t%.c}"); done
    step "aarch64 build" make -s -j"$JOBS" BUILD="$b" CC=aarch64-linux-gnu-gcc AR=aarch64-linux-gnu-ar \
        "$b/dsv4" "$b/tools/make_flash_ckpt" "${tests[@]}"
    step "aarch64 release suite under qemu-aarch64" env DSV4_TEST_QEMU="${DSV4_TEST_QEMU:-1}" \
        DSV4_TEST_JOBS="${DSV4_TEST_JOBS:-$JOBS}" make -s CROSS_BUILD="$CROSS_BUILD" cross-aarch64 ;;
riscv64)
    step "riscv64 setup (cross gcc, qemu-user, cJSON + PCRE2 from source)" setup_riscv64
    step "riscv64 build + kernel tests under qemu-riscv64" make -j"$JOBS" CROSS_BUILD="$CROSS_BUILD" cross-riscv64 ;;
strict)
    step "gcc -std=c11 -pedantic -Werror and clang -Werror builds" strict_builds ;;
*)
    echo "usage: .ci/cross.sh aarch64|riscv64|strict" >&2; exit 2 ;;
esac
