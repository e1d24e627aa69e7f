#!/usr/bin/env bash
# Puts scikit-learn's bundled datasets (iris, wine, breast cancer, digits, diabetes; BSD-3 / public domain)
# into $NABLA_TEST_DATA/sklearn (default ~/.cache/nabla-test-data/sklearn). They come from Debian's
# python3-sklearn package, downloaded and unpacked without installing it (no root needed). Idempotent.
set -euo pipefail
root="${NABLA_TEST_DATA:-$HOME/.cache/nabla-test-data}"
dest="$root/sklearn"
if [ -f "$dest/wine_data.csv" ] && [ -f "$dest/breast_cancer.csv" ]; then exit 0; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# As root, apt-get would hand the download to its unprivileged _apt user, who cannot write into our temp dir.
sandbox=(); if [ "$(id -u)" = 0 ]; then sandbox=(-o APT::Sandbox::User=root); fi
(cd "$work" && apt-get "${sandbox[@]}" download python3-sklearn >/dev/null)
dpkg-deb -x "$work"/python3-sklearn_*.deb "$work/x"
mkdir -p "$dest"
cp "$work"/x/usr/lib/python3/dist-packages/sklearn/datasets/data/*.csv* "$dest/"
echo "scikit-learn datasets -> $dest"
