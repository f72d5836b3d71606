#!/usr/bin/env bash
# Install the system tools the kit and its tests use, from Debian packages.
# Each line of NEEDED is "<command> <debian-package>". A command already on PATH is skipped.
# gcc builds the kit's optional native tokenizer (kit/_fastlog.c) when `pip install` runs, so this
# script runs before it (Makefile); without a compiler the kit uses its polars-only path.
# fstrm_capture (fstrm-bin) receives unbound's dnstap in the lab (python -m lab run --dnstap).
# As root with apt-get: installs what is missing. Otherwise: says which packages to install and
# exits 0 (the kit still works for what does not need them; tests that need a tool skip locally
# and fail in CI).
set -euo pipefail

NEEDED=(
  "tshark tshark"
  "tcpdump tcpdump"
  "prometheus prometheus"
  "promtool prometheus"
  "nsd nsd"
  "unbound unbound"
  "unbound-control unbound"
  "dnsperf dnsperf"
  "nft nftables"
  "dig dnsutils"
  "ip iproute2"
  "conntrack conntrack"
  "ethtool ethtool"
  "chromium chromium"
  "pdftotext poppler-utils"
  "gcc gcc"
  "fstrm_capture fstrm-bin"
)

missing_pkgs=()
for entry in "${NEEDED[@]}"; do
  cmd=${entry%% *}
  pkg=${entry##* }
  if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ] && ! [ -x "/usr/bin/$cmd" ]; then
    case " ${missing_pkgs[*]-} " in *" $pkg "*) ;; *) missing_pkgs+=("$pkg") ;; esac
  fi
done

if [ ${#missing_pkgs[@]} -eq 0 ]; then
  echo "system-deps: all system tools present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${missing_pkgs[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # wireshark-common asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections || true
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null
  # Debian's packages may start their daemons; the kit starts its own on loopback or in namespaces.
  for svc in prometheus nsd unbound prometheus-node-exporter; do
    if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
  done
  echo "system-deps: done"
else
  echo "system-deps: missing Debian packages: ${missing_pkgs[*]}" >&2
  echo "system-deps: install them with: sudo apt-get install ${missing_pkgs[*]}" >&2
  echo "system-deps: (conda users: 'conda install -c conda-forge wireshark' gives tshark)" >&2
  echo "system-deps: tests that need a missing tool are skipped outside CI and fail in CI." >&2
fi
