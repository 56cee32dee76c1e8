#!/usr/bin/env bash
# Sets up everything schoolproxy needs on a fresh Debian machine, idempotently.
#   scripts/setup.sh run    -> the proxy's own Python environment (.venv)
#   scripts/setup.sh test   -> that, plus what the test suite drives (curl, chromium, squid, squidguard, wrk, nginx,
#                              krb5-kdc, slapd and their tools, iproute2, nftables,
#                              wireguard-go and wireguard-tools)
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-run}

need_debs=()
lean_debs=()
# python-gssapi (Kerberos sign-in) builds against MIT Kerberos's headers.
command -v krb5-config >/dev/null || need_debs+=(libkrb5-dev)
if [ "$want" = test ]; then
  command -v curl >/dev/null || need_debs+=(curl)
  command -v chromium >/dev/null || need_debs+=(chromium)
  # The CA onboarding test puts the certificate from /ca into Chromium's own NSS store.
  command -v certutil >/dev/null || need_debs+=(libnss3-tools)
  # The Squid front end's tests and benchmark: Squid itself, squidGuard to
  # compare against, wrk to load them.
  [ -x /usr/sbin/squid ] || need_debs+=(squid)
  command -v squidGuard >/dev/null || need_debs+=(squidguard)
  command -v wrk >/dev/null || need_debs+=(wrk)
  # bench_peers.py: e2guardian (as Debian ships it) beside the others.
  [ -x /usr/sbin/e2guardian ] || need_debs+=(e2guardian)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_debs+=(nginx-light)
  # Kerberos sign-in and directory groups: a real MIT KDC and OpenLDAP server, started by the tests.
  [ -x /usr/sbin/krb5kdc ] || need_debs+=(krb5-kdc)
  [ -x /usr/sbin/kadmin.local ] || need_debs+=(krb5-admin-server)
  command -v kinit >/dev/null || need_debs+=(krb5-user)
  [ -x /usr/sbin/slapd ] || need_debs+=(slapd)
  command -v ldapadd >/dev/null || need_debs+=(ldap-utils)
  # The review pack's PDF is checked page by page as PNG images.
  command -v pdftoppm >/dev/null || need_debs+=(poppler-utils)
  # Shared limits: the tests start their own Redis on a free port.
  command -v redis-server >/dev/null || need_debs+=(redis-server)
  # The systemd units are checked with systemd-analyze verify.
  command -v systemd-analyze >/dev/null || need_debs+=(systemd)
  # Circumvention tests (issue 27) use the real tools: ssh through nc -X connect
  # to an sshd, openvpn --http-proxy, websockify, and npm unblockers under node.
  [ -x /usr/sbin/sshd ] || need_debs+=(openssh-server)
  command -v ssh >/dev/null || need_debs+=(openssh-client)
  nc -h 2>&1 | grep -q -- '-X proxy_protocol' || need_debs+=(netcat-openbsd)
  [ -x /usr/sbin/openvpn ] || need_debs+=(openvpn)
  command -v websockify >/dev/null || need_debs+=(websockify)
  command -v npm >/dev/null || need_debs+=(nodejs npm)
  # Gateway tests (issue 32): network namespaces joined by veth pairs, nftables
  # redirecting a client's web ports to the proxy in transparent mode.
  command -v ip >/dev/null || need_debs+=(iproute2)
  command -v nft >/dev/null || need_debs+=(nftables)
  # Devices off site: a real WireGuard client (userspace wireguard-go, and wg to configure it).
  command -v wireguard-go >/dev/null || need_debs+=(wireguard-go)
  # wg alone: its recommended kernel modules would pull in a whole kernel image.
  command -v wg >/dev/null || lean_debs+=(wireguard-tools)
fi
if [ ${#need_debs[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_debs[*]}"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need_debs[@]}"
fi
if [ ${#lean_debs[@]} -gt 0 ]; then
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  [ ${#need_debs[@]} -gt 0 ] || $sudo_ apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${lean_debs[@]}"
fi

if [ "$want" = test ] && { [ ! -d tests/node/node_modules ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; }; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error) && touch tests/node/node_modules
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
extras=""; [ "$want" = test ] && extras="[test]"
stamp=.venv/.installed-$want
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".${extras}"
  touch "$stamp"
fi
