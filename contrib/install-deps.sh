#!/bin/sh
# install-deps.sh - install what mxrelay needs to build and to run its tests
# on Debian 12 (run as root). Idempotent.
set -e
export DEBIAN_FRONTEND=noninteractive
BUILD="build-essential autoconf automake libtool pkg-config
       libevent-dev libssl-dev libspf2-dev libconfig-dev libsqlite3-dev
       libpq-dev"
TEST="perl libio-socket-ssl-perl libnet-ssleay-perl openssl swaks
      postfix dnsmasq-base dnsutils dovecot-core dovecot-lmtpd sqlite3 procps
      libyaml-libyaml-perl libnet-dns-perl systemd prometheus postgresql
      rspamd opendkim opendkim-tools"
# the Debian package build and its checks (.ci/test-package)
PACKAGE="devscripts debhelper lintian fakeroot adduser"
# the libFuzzer targets (make fuzz): clang with its sanitizer runtimes
FUZZ="clang libclang-rt-14-dev"
# Postfix's postinst must not try to start a system instance.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $BUILD $TEST $PACKAGE $FUZZ >/dev/null
