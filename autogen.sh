#!/bin/sh
# Generate configure and Makefile.in. Needs autoconf, automake, libtool.
set -e
cd "$(dirname "$0")"
mkdir -p build-aux
autoreconf -fi
