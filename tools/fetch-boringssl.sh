#!/usr/bin/env bash
# Fetches BoringSSL's source from Debian (the source package
# android-platform-external-boringssl, the same snapshot as Debian's
# android-libboringssl) into third_party/boringssl/source, where the Bazel
# repository @boringssl (third_party/boringssl/boringssl.BUILD) builds it.
# Does nothing when it is there already. Needs apt-get, tar and xz. It uses a
# private apt state directory with a deb-src twin of this machine's own Debian
# sources, and leaves the system's apt configuration as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
package=android-platform-external-boringssl
dest=third_party/boringssl/source
[ -f "$dest/BUILD.generated.bzl" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sources" "$work/lists/partial" "$work/cache/archives/partial" "$work/download"

# deb-src entries for the machine's Debian archives: deb822 files
# (Types: deb) and one-line lists ("deb URI suite components").
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && sed 's/^Types:.*$/Types: deb-src/' "$f" >"$work/sources/$(basename "$f")"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] && sed -n 's/^deb \(.*\)$/deb-src \1/p' "$f" >>"$work/sources/src.list"
done
if [ -z "$(cat "$work"/sources/* 2>/dev/null)" ]; then
  echo "fetch-boringssl: no Debian apt sources found in /etc/apt" >&2
  exit 1
fi
apt=(apt-get -q -o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$work/sources"
     -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
     -o APT::Sandbox::User=root)
echo "fetching the source of $package (Debian)" >&2
"${apt[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; exit 1; }
# apt-get source checks each file against the signed index it came from.
(cd "$work/download" && "${apt[@]}" source --download-only "$package") >"$work/source.log" 2>&1 \
  || { cat "$work/source.log" >&2; exit 1; }
orig=$(ls "$work"/download/"$package"_*.orig.tar.xz)
mkdir -p "$dest.partial"
tar -xJf "$orig" -C "$dest.partial" --strip-components=1
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "BoringSSL $(basename "$orig" .orig.tar.xz | sed "s/^${package}_//") in $dest" >&2
