#!/bin/sh
# Run inside a fresh `debootstrap --variant=minbase SUITE` root (chroot) before
# `docker import` turns it into handbook/debian:SUITE. Arguments: SUITE MIRROR [SECURITY].
# Gives the image apt sources for its suite, keeps later installs lean (no docs, man
# pages, translations or recommended packages), stops package scripts from starting
# services, and drops every cache.
set -eu
suite=$1 mirror=$2 security=${3:-}

rm -f /etc/apt/sources.list
{
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' \
        "$mirror" "$suite" "$suite"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [ -n "$security" ]; then
        printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' \
            "$security" "$suite"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
} >/etc/apt/sources.list.d/debian.sources

cat >/etc/dpkg/dpkg.cfg.d/handbook-slim <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CONF
cat >/etc/apt/apt.conf.d/handbook-slim <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
CONF
# Package scripts must not start the servers they install (there is no init here).
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d

find /usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf /usr/share/man/* /usr/share/info/* /usr/share/locale/* \
    /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old \
    /var/log/apt/* /var/log/dpkg.log /var/log/bootstrap.log
