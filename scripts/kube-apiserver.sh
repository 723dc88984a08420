#!/usr/bin/env bash
# A real kube-apiserver, kube-controller-manager and etcd for the `apiserver` test tier
# (tests/apiserver/), built from Debian's own packages; docs/kube-testing.md explains the recipe.
#
#   scripts/kube-apiserver.sh build    build once into the cache (minutes), or reuse it (instant)
#   scripts/kube-apiserver.sh bin-dir  print the folder with the three binaries, or why there is none
#   scripts/kube-apiserver.sh clean    remove every cached build
#
# Debian's `kubernetes` source package (bookworm) is the whole Kubernetes v1.20.2 tree with its
# vendor/ folder. The build needs no root and changes nothing on the machine: apt runs with a
# private state folder to download the sources and three binary packages (Go 1.19, etcd 3.4,
# modern-go/reflect2 1.0.2), which are unpacked, not installed; Go builds offline.
#
# The cache lives outside the repository, in ${KAIZEN_KUBE_CACHE:-~/.cache/kaizen}, under a
# name that carries a hash of this script: changing the recipe rebuilds. A cached build that no
# longer runs is rebuilt (KAIZEN_KUBE_BUILD_DIR: where to build, default /dev/shm when it has
# room). When a step fails (no apt, no network, not Debian...), `build` says
# why in one line, records it for the tests (which then skip with that reason) and exits 1.
# KAIZEN_APISERVER=skip skips the tier without trying.
set -Eeuo pipefail

KUBE_VERSION=1.20.2
GO_PACKAGE=golang-1.19
SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
KEY=$(sha256sum "$SCRIPT" | cut -c1-12)
CACHE_ROOT=${KAIZEN_KUBE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/kaizen}
NAME=kube-apiserver-$KUBE_VERSION-$KEY
DEST=$CACHE_ROOT/$NAME
SKIP_FILE=$DEST.skip
LOG=$DEST.log
# The build folder (~1.6 GB, ~100k files, deleted after the build) goes to memory when /dev/shm
# has room: unpacking and deleting it cost a minute more on disk.
if [[ -z ${KAIZEN_KUBE_BUILD_DIR:-} && -d /dev/shm && -w /dev/shm ]]; then
    shm_free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}') || true
    if [[ ${shm_free_kb:-0} =~ ^[0-9]+$ ]] && ((shm_free_kb > 6 * 1024 * 1024)); then
        KAIZEN_KUBE_BUILD_DIR=/dev/shm
    fi
fi
WORK=${KAIZEN_KUBE_BUILD_DIR:-$CACHE_ROOT}/kaizen-kube-build-$KEY
BINARIES=(kube-apiserver kube-controller-manager etcd)

# Progress and the reason for a skip go to the caller's stdout, also from steps whose output
# is redirected to the log.
exec 3>&1
say() { echo "[kube-apiserver] $*" >&3; }

built() {
    local b
    for b in "${BINARIES[@]}"; do
        [[ -x $DEST/bin/$b ]] || return 1
    done
    [[ $("$DEST/bin/kube-apiserver" --version 2>/dev/null) == "Kubernetes v$KUBE_VERSION" ]] || return 1
    [[ $("$DEST/bin/etcd" --version 2>/dev/null) == "etcd Version: 3.4."* ]] || return 1
}

skip() {
    # One line for people and for the tests' skip message; the build folder goes.
    local reason="$*"
    cd /
    rm -rf "$WORK" "$DEST.tmp"
    mkdir -p "$CACHE_ROOT"
    echo "$reason" >"$SKIP_FILE"
    say "not built, the apiserver tests will be skipped: $reason"
    [[ -s $LOG ]] && say "build log: $LOG"
    exit 1
}

# apt with a private state folder: no root needed, the machine's own lists untouched. The
# repositories are the machine's own Debian ones (main component of this release), as
# binary (deb) and source (deb-src) entries.
APT_DIR=$WORK/apt
apt_private() {
    local opts=(
        -o "Dir::Etc::SourceList=$APT_DIR/sources.list"
        -o "Dir::Etc::SourceParts=$APT_DIR/sources.list.d"
        -o "Dir::State::Lists=$APT_DIR/lists"
        -o "Dir::Cache=$APT_DIR/cache"
        -o "Debug::NoLocking=true"
        -o "Acquire::Retries=3"
        -o "Acquire::http::Timeout=60"
    )
    [[ $(id -u) == 0 ]] && opts+=(-o "APT::Sandbox::User=root")
    timeout 600 "$1" "${opts[@]}" "${@:2}"
}

STEP=""
step() {
    STEP=$1
    STEP_START=$SECONDS
    say "$STEP..."
    echo "=== $STEP" >>"$LOG"
}
done_step() { say "  done in $((SECONDS - STEP_START))s"; }

on_error() {
    local code=$?
    trap - ERR
    skip "step '$STEP' failed (exit $code); last log line: $(grep -v '^\s*$' "$LOG" 2>/dev/null | tail -1 | cut -c1-200)"
}

do_build() {
    local started=$SECONDS
    rm -rf "$WORK" "$DEST.tmp" "$SKIP_FILE"
    mkdir -p "$WORK" "$CACHE_ROOT"
    : >"$LOG"

    local missing=()
    for tool in apt-get apt-cache dpkg-deb tar gzip git make sha256sum timeout python3; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) || skip "missing tools: ${missing[*]} (a Debian machine with apt is needed)"
    [[ $(uname -m) == x86_64 ]] || skip "only built on x86_64 (this is $(uname -m))"
    local codename
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    [[ -n $codename ]] || skip "no VERSION_CODENAME in /etc/os-release"

    trap on_error ERR

    step "finding this machine's Debian repositories ($codename, main)"
    mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
    # shellcheck disable=SC2016 # apt's own $(FIELD) placeholders
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' \
        2>>"$LOG" | sort -u | while read -r uri release component; do
        if [[ $component == main && ($release == "$codename" || $release == "$codename-updates" || $release == "$codename-security") ]]; then
            echo "deb $uri $release main"
            echo "deb-src $uri $release main"
        fi
    done >"$APT_DIR/sources.list"
    [[ -s $APT_DIR/sources.list ]] || skip "apt has no '$codename main' repository configured"
    cat "$APT_DIR/sources.list" >>"$LOG"
    done_step

    step "apt-get update (private lists)"
    apt_private apt-get -q update >>"$LOG" 2>&1
    done_step

    step "checking Debian's kubernetes source package"
    local version
    version=$(apt_private apt-cache showsrc kubernetes 2>>"$LOG" | sed -n 's/^Version: //p' | sort -V | tail -1)
    [[ $version == *"really$KUBE_VERSION"* || $version == "$KUBE_VERSION"* ]] ||
        skip "Debian $codename has kubernetes source '${version:-none}', the recipe needs $KUBE_VERSION (Debian 12 bookworm)"
    echo "kubernetes source $version" >>"$LOG"
    done_step

    step "downloading the sources of kubernetes $version and $GO_PACKAGE, etcd-server, reflect2"
    mkdir -p "$WORK/src" "$WORK/debs" "$WORK/root"
    cd "$WORK/src"
    apt_private apt-get -q source --download-only "kubernetes=$version" >>"$LOG" 2>&1
    cd "$WORK/debs"
    apt_private apt-get -q download "$GO_PACKAGE-go" "$GO_PACKAGE-src" etcd-server \
        golang-github-modern-go-reflect2-dev >>"$LOG" 2>&1
    cd "$WORK"
    done_step

    step "unpacking (Go, etcd and reflect2 into the build folder; nothing installed)"
    local deb
    for deb in "$WORK"/debs/*.deb; do
        dpkg-deb -x "$deb" "$WORK/root"
    done
    local goroot=$WORK/root/usr/lib/go-1.19 tree=$WORK/go/src/k8s.io/kubernetes
    [[ -x $goroot/bin/go ]] || skip "the $GO_PACKAGE-go package has no usr/lib/go-1.19/bin/go"
    mkdir -p "$tree"
    tar -xzf "$WORK"/src/kubernetes_*.orig.tar.gz -C "$tree" --strip-components=1
    [[ -f $tree/cmd/kube-apiserver/apiserver.go ]] || skip "unexpected layout of the kubernetes source tarball"
    # Debian's patches (kubectl's printing of long strings, CVE-2021-25743), as dpkg-source would.
    python3 - "$WORK"/src/kubernetes_*.debian.tar.xz "$WORK/debian-src" <<'EOF'
import sys, tarfile
tarfile.open(sys.argv[1]).extractall(sys.argv[2])
EOF
    local patch
    while read -r patch _; do
        [[ -z $patch || $patch == \#* ]] && continue
        git -C "$tree" apply -p1 --whitespace=nowarn "$WORK/debian-src/debian/patches/$patch" >>"$LOG" 2>&1
    done < <(cat "$WORK/debian-src/debian/patches/series" 2>/dev/null)
    # The vendored reflect2 1.0.1 crashes on Go >= 1.18 (it reads runtime internals that
    # moved); Debian's 1.0.2 sources replace it.
    local reflect2=$WORK/root/usr/share/gocode/src/github.com/modern-go/reflect2
    [[ -f $reflect2/reflect2.go ]] || skip "golang-github-modern-go-reflect2-dev has no reflect2 sources"
    rm -rf "$tree/vendor/github.com/modern-go/reflect2"
    cp -r "$reflect2" "$tree/vendor/github.com/modern-go/reflect2"
    rm -f "$tree/vendor/github.com/modern-go/reflect2/go.mod"
    done_step

    # Kubernetes' hack scripts place the tools they build with `rsync -pc FILE DIR`; where
    # rsync is not installed, `cp -p` does the same.
    local tools=$WORK/tools
    mkdir -p "$tools"
    if ! command -v rsync >/dev/null; then
        # shellcheck disable=SC2016 # the shim's own "$1" and "$@"
        printf '%s\n' '#!/bin/sh' '[ "$1" = "-pc" ] && shift' 'exec cp -p "$@"' >"$tools/rsync"
        chmod +x "$tools/rsync"
    fi

    # GOPATH mode: module mode trips over the vendor folder's metadata with this Go.
    export GOROOT=$goroot PATH=$goroot/bin:$tools:$PATH GOPATH=$WORK/go GO111MODULE=off \
        GOFLAGS="" GOCACHE=$WORK/gocache GOPROXY=off CGO_ENABLED=0 GOTOOLCHAIN=local
    cd "$tree"

    # The release tree carries every generated file but the OpenAPI definitions
    # (openapi.GetOpenAPIDefinitions would be undefined).
    step "generating the OpenAPI definitions (make gen_openapi)"
    make gen_openapi >>"$LOG" 2>&1
    done_step

    step "building kube-apiserver and kube-controller-manager (go build, offline; the long step)"
    # The version the binaries and /version report, as hack/lib/version.sh would set it.
    local ldflags=(-s -w) pkg minor=${KUBE_VERSION#*.}
    minor=${minor%%.*}
    for pkg in client-go/pkg/version component-base/version; do
        ldflags+=(-X "k8s.io/kubernetes/vendor/k8s.io/$pkg.gitVersion=v$KUBE_VERSION"
            -X "k8s.io/kubernetes/vendor/k8s.io/$pkg.gitMajor=1"
            -X "k8s.io/kubernetes/vendor/k8s.io/$pkg.gitMinor=$minor"
            -X "k8s.io/kubernetes/vendor/k8s.io/$pkg.gitTreeState=clean")
    done
    mkdir -p "$DEST.tmp/bin"
    go build -tags providerless -o "$DEST.tmp/bin/" -gcflags=all=-dwarf=false -ldflags "${ldflags[*]}" \
        ./cmd/kube-apiserver ./cmd/kube-controller-manager >>"$LOG" 2>&1
    cp "$WORK/root/usr/bin/etcd" "$DEST.tmp/bin/etcd"
    done_step

    trap - ERR
    cd /
    {
        echo "kubernetes $version (Debian $codename source package), built $(date -u +%FT%TZ)"
        echo "go: $("$goroot/bin/go" version)"
        echo "etcd: $("$DEST.tmp/bin/etcd" --version | head -1)"
        echo "recipe: $SCRIPT (sha256 $KEY...)"
    } >"$DEST.tmp/BUILD-INFO"
    rm -rf "$DEST"
    mv "$DEST.tmp" "$DEST"
    built || skip "the fresh build does not run (see $LOG)"
    rm -rf "$WORK"
    # Builds of older recipes are of no more use.
    find "$CACHE_ROOT" -maxdepth 1 -name 'kube-apiserver-*' ! -name "$NAME" ! -name "$NAME.*" \
        -exec rm -rf {} +
    say "built in $((SECONDS - started))s: $DEST/bin"
}

cmd_build() {
    if [[ ${KAIZEN_APISERVER:-} == skip ]]; then
        say "KAIZEN_APISERVER=skip: the apiserver tests will be skipped"
        exit 0
    fi
    if built; then
        say "cached: $DEST/bin"
        return 0
    fi
    mkdir -p "$CACHE_ROOT"
    # One build at a time (two `make test` runs share the cache).
    exec 9>"$CACHE_ROOT/kube-apiserver.lock"
    if command -v flock >/dev/null; then
        flock 9
        if built; then
            say "cached: $DEST/bin"
            return 0
        fi
    fi
    say "building Kubernetes v$KUBE_VERSION from Debian's sources (once; ~5 min on 2 cores); log: $LOG"
    do_build
}

cmd_bin_dir() {
    if built; then
        echo "$DEST/bin"
    elif [[ -s $SKIP_FILE ]]; then
        cat "$SKIP_FILE" >&2
        exit 1
    else
        echo "not built yet: run 'make kube-apiserver' (scripts/kube-apiserver.sh build)" >&2
        exit 1
    fi
}

case ${1:-} in
build) cmd_build ;;
bin-dir) cmd_bin_dir ;;
clean) rm -rf "$CACHE_ROOT"/kube-apiserver-* ;;
*)
    sed -n '2,8p' "$SCRIPT" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
