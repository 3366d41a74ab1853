#!/usr/bin/env bash
# Builds the end-to-end test binaries into <repo root>/_output/bin and makes
# sure etcd and redis-server are installed (Debian's etcd-server and redis-server
# packages). Also
# installs versitygw (the local S3 server of the S3 tests and benchmarks) and
# distribution's own registry binary (the benchmark's comparison) there.
#
# Idempotent: a binary newer than all of its sources is not rebuilt, and apt
# is not touched when etcd is already on PATH, so a second run takes seconds.
# Needs only Go, gcc, git and apt (root, or sudo, for the etcd install).
#
# `build.sh demo` builds only what `make demo` runs: etcd and the image API server.
#
# Env: E2E_BIN_DIR overrides the output folder; E2E_FORCE_BUILD=1 rebuilds;
# VERSITYGW_VERSION pins another versitygw release.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin_dir=${E2E_BIN_DIR:-$root/_output/bin}
mkdir -p "$bin_dir"

# up_to_date BINARY SRC_DIR: true when BINARY exists and no Go source, go.mod
# or go.sum under SRC_DIR is newer than it.
up_to_date() {
	local binary=$1 src=$2
	[[ ${E2E_FORCE_BUILD:-0} != 1 && -x $binary ]] || return 1
	[[ -z $(find "$src" -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$binary" -print -quit) ]]
}

# build_module NAME SRC_DIR: go build of the main package of a nested module.
build_module() {
	local name=$1 src=$2 out=$bin_dir/$1
	if up_to_date "$out" "$src"; then
		echo "build: $name is up to date ($out)"
		return
	fi
	echo "build: $name -> $out (several minutes when cold)"
	local start=$SECONDS
	# GOWORK=off: the nested module must resolve with its own go.mod/go.sum.
	(cd "$src" && GOWORK=off go build -o "$out.tmp" . && mv -f "$out.tmp" "$out")
	echo "build: $name built in $((SECONDS - start))s"
}

install_etcd() {
	if [[ -n ${E2E_ETCD:-} ]]; then
		echo "etcd: using E2E_ETCD=$E2E_ETCD"
		return
	fi
	if command -v etcd >/dev/null 2>&1; then
		echo "etcd: $(command -v etcd) ($(etcd --version 2>/dev/null | head -n1))"
		return
	fi
	local sudo=()
	if [[ $(id -u) != 0 ]]; then
		command -v sudo >/dev/null 2>&1 || { echo "etcd: not installed and not root; run: apt-get install -y etcd-server" >&2; exit 1; }
		sudo=(sudo)
	fi
	echo "etcd: installing Debian package etcd-server"
	export DEBIAN_FRONTEND=noninteractive
	local log
	log=$(mktemp)
	# Try without refreshing the package lists first; a fresh machine has none.
	if ! "${sudo[@]}" apt-get install -y -qq etcd-server >"$log" 2>&1; then
		"${sudo[@]}" apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
		"${sudo[@]}" apt-get install -y -qq etcd-server >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
	fi
	rm -f "$log"
	# The package enables a systemd service; on machines where systemd runs it
	# would hold 127.0.0.1:2379. The tests use their own etcd on free ports, so
	# that is harmless, but stop it to keep the machine quiet.
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
		"${sudo[@]}" systemctl disable --now etcd >/dev/null 2>&1 || true
	fi
	echo "etcd: installed $(command -v etcd) ($(etcd --version | head -n1))"
}

# install_redis: Debian's redis-server, for the Redis blob descriptor cache tests. Like etcd,
# apt is not touched when redis-server is already on PATH; the package's own service is stopped.
install_redis() {
	if [[ -n ${E2E_REDIS:-} ]]; then
		echo "redis: using E2E_REDIS=$E2E_REDIS"
		return
	fi
	if command -v redis-server >/dev/null 2>&1; then
		echo "redis: $(command -v redis-server) ($(redis-server --version | head -n1))"
		return
	fi
	local sudo=()
	if [[ $(id -u) != 0 ]]; then
		command -v sudo >/dev/null 2>&1 || { echo "redis: not installed and not root; run: apt-get install -y redis-server" >&2; exit 1; }
		sudo=(sudo)
	fi
	echo "redis: installing Debian package redis-server"
	export DEBIAN_FRONTEND=noninteractive
	local log
	log=$(mktemp)
	if ! "${sudo[@]}" apt-get install -y -qq redis-server >"$log" 2>&1; then
		"${sudo[@]}" apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
		"${sudo[@]}" apt-get install -y -qq redis-server >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
	fi
	rm -f "$log"
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
		"${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
	fi
	echo "redis: installed $(command -v redis-server) ($(redis-server --version | head -n1))"
}

install_etcd
build_module imageapiserver "$root/e2e/imageapiserver"
# `build.sh demo` stops here: the demo runs etcd, the image API server and the registry only,
# so a fresh machine does not build kube-apiserver, versitygw and distribution for it.
if [[ ${1:-all} == demo ]]; then
	exit 0
fi
install_redis
# Upstream kube-apiserver v1.34 for the delegated authn/authz tests (nested
# module). Cold: ~5.5 min on 2 cores, 2.1 GB peak RSS (the link).
build_module kube-apiserver "$root/e2e/kubeapiserver"

# install_versitygw: go install of the S3 server from the module proxy, cached by version
# (a stamp file beside the binary). Cold: about two minutes on 2 cores.
install_versitygw() {
	local version=${VERSITYGW_VERSION:-v1.8.0}
	local out=$bin_dir/versitygw stamp=$bin_dir/.versitygw.version
	if [[ ${E2E_FORCE_BUILD:-0} != 1 && -x $out && -f $stamp && $(<"$stamp") == "$version" ]]; then
		echo "build: versitygw $version is up to date ($out)"
		return
	fi
	echo "build: versitygw $version -> $out (about two minutes when cold)"
	local start=$SECONDS tmp
	tmp=$(mktemp -d)
	# GOWORK=off and GOFLAGS=: a pkg@version install ignores the current module anyway.
	(cd "$tmp" && GOWORK=off GOFLAGS= GOBIN="$tmp" go install "github.com/versity/versitygw/cmd/versitygw@$version")
	mv -f "$tmp/versitygw" "$out"
	rm -rf "$tmp"
	echo "$version" >"$stamp"
	echo "build: versitygw built in $((SECONDS - start))s"
}

# build_distribution_registry: distribution's own registry binary (its garbage-collect is the
# benchmark's yardstick), at the version go.mod requires; rebuilt when go.mod/go.sum change.
build_distribution_registry() {
	local out=$bin_dir/distribution-registry
	if [[ ${E2E_FORCE_BUILD:-0} != 1 && -x $out && -z $(find "$root/go.mod" "$root/go.sum" -newer "$out" -print -quit) ]]; then
		echo "build: distribution-registry is up to date ($out)"
		return
	fi
	echo "build: distribution-registry -> $out"
	(cd "$root" && go build -o "$out.tmp" github.com/distribution/distribution/v3/cmd/registry && mv -f "$out.tmp" "$out")
}

install_versitygw
build_distribution_registry
