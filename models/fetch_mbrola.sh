#!/usr/bin/env bash
# Fetch and install the mbrola synthesiser and its English voices (us1, us2, us3, en1), which
# espeak-ng drives as its `mb-us1`… voices. They live in Debian's contrib/non-free sections, which
# this machine's apt sources do not enable, so this script uses a PRIVATE apt configuration (its own
# sources.list, lists and cache in a temporary directory) to download the .debs, and never edits
# /etc/apt. The .debs are kept in DEST (default artifacts/mbrola) and installed with dpkg when
# running as root; otherwise they are unpacked under DEST/root (see STENO_TTS_ROOT in synthesize.py).
#
#   bash models/fetch_mbrola.sh [DEST]
set -euo pipefail
PACKAGES="mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1"
DEST=$(realpath -m "${1:-artifacts/mbrola}")
mkdir -p "$DEST"
if command -v mbrola >/dev/null && [ -d /usr/share/mbrola/us1 ] && [ -d /usr/share/mbrola/en1 ]; then
    echo "mbrola and its English voices are installed"; exit 0
fi
if ! ls "$DEST"/mbrola_*.deb >/dev/null 2>&1; then
    TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
    . /etc/os-release
    SUITE=${VERSION_CODENAME:-bookworm}
    mkdir -p "$TMP/lists/partial" "$TMP/cache/archives/partial" "$TMP/etc"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $SUITE main contrib non-free" \
        > "$TMP/etc/sources.list"
    : > "$TMP/etc/empty"
    APT_OPTS=(-o Dir::Etc::sourcelist="$TMP/etc/sources.list" -o Dir::Etc::sourceparts="$TMP/etc/empty"
              -o Dir::State::Lists="$TMP/lists" -o Dir::Cache="$TMP/cache" -o Dir::Cache::archives="$TMP/cache/archives"
              -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1)
    apt-get "${APT_OPTS[@]}" -q update
    (cd "$DEST" && apt-get "${APT_OPTS[@]}" -q download $PACKAGES)
fi
if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive dpkg -i "$DEST"/mbrola*.deb
else
    mkdir -p "$DEST/root"
    for deb in "$DEST"/mbrola*.deb; do dpkg-deb -x "$deb" "$DEST/root"; done
    echo "not root: unpacked under $DEST/root (set STENO_TTS_ROOT=$DEST/root)"
fi
