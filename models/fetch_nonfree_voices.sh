#!/usr/bin/env bash
# Fetch and install the voices that live in Debian's contrib/non-free sections, which this machine's
# apt sources do not enable: the mbrola synthesiser with its English voices (us1, us2, us3, en1),
# which espeak-ng drives as `mb-us1`…, the sixteen other-language voices that espeak-ng can make read
# English with their speaker's accent (`mb-de5-en`, `mb-fr4-en`…), and SVOX Pico's `pico2wave` with its en-US and en-GB voices.
# It uses a PRIVATE apt configuration (its own sources.list, lists and cache in a temporary
# directory) to download the .debs, and never edits /etc/apt. The .debs are kept in DEST (default
# artifacts/nonfree-voices) and installed with dpkg when running as root; otherwise they are unpacked
# under DEST/root (see STENO_TTS_ROOT in synthesize.py; mbrola works from there, Pico does not, as
# pico2wave only looks for its voices under /usr/share/pico).
#
#   bash models/fetch_nonfree_voices.sh [DEST]
set -euo pipefail
ACCENTED="af1 de1 de2 de3 de4 de5 de6 fr1 fr4 gr2 hu1 nl2 pl1 ro1 sw1 sw2"   # espeak-ng's mb-*-en voices
PACKAGES="mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 $(printf 'mbrola-%s ' $ACCENTED)libttspico-utils libttspico0 libttspico-data"
DEST=$(realpath -m "${1:-artifacts/nonfree-voices}")
mkdir -p "$DEST"
voices_installed() {
    for v in us1 us2 us3 en1 $ACCENTED; do [ -d "/usr/share/mbrola/$v" ] || return 1; done
}
if command -v mbrola >/dev/null && voices_installed \
        && command -v pico2wave >/dev/null && [ -f /usr/share/pico/lang/en-GB_ta.bin ]; then
    echo "mbrola, Pico and their English voices are installed"; exit 0
fi
if ! ls "$DEST"/mbrola_*.deb "$DEST"/mbrola-sw2_*.deb "$DEST"/libttspico-utils_*.deb >/dev/null 2>&1; then
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
    # libttspico-utils needs libpopt0 (Debian main): apt resolves it from the machine's own sources
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$DEST"/*.deb
else
    mkdir -p "$DEST/root"
    for deb in "$DEST"/*.deb; do dpkg-deb -x "$deb" "$DEST/root"; done
    echo "not root: unpacked under $DEST/root (set STENO_TTS_ROOT=$DEST/root)"
fi
