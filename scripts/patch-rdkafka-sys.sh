#!/usr/bin/env bash
# Prepares vendor/rdkafka-sys: the rdkafka-sys crate that Cargo.lock pins,
# fetched with cargo from the registry, with patches/librdkafka/*.patch
# applied to its bundled librdkafka. Cargo.toml's [patch.crates-io] builds
# it instead of the registry copy. Idempotent: does nothing while the copy
# matches the pinned version and the patches. Nothing of librdkafka is
# committed; only our patches are.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(awk '/^name = "rdkafka-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$version" ] || { echo "patch-rdkafka-sys: no rdkafka-sys in Cargo.lock" >&2; exit 1; }
dest=vendor/rdkafka-sys
stamp="$version $(cat patches/librdkafka/*.patch scripts/patch-rdkafka-sys.sh | sha256sum | cut -c1-16)"
if [ -f "$dest/.slaprobe-patched" ] && [ "$(cat "$dest/.slaprobe-patched")" = "$stamp" ]; then
  exit 0
fi

# The patched copy is kept once per stamp under the user's cache and copied
# from there with its files' times: every clone then has the same tree with
# the same times, so a cargo target directory kept between clones (CI's,
# see .ci/run) finds librdkafka built and does not build it again.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/slaprobe/rdkafka-sys-$(echo "$stamp" | tr ' +' '--')"
if [ -f "$cache/.slaprobe-patched" ] && [ "$(cat "$cache/.slaprobe-patched")" = "$stamp" ]; then
  echo "preparing $dest: rdkafka-sys $version with patches/librdkafka/*.patch (from $cache)"
  mkdir -p vendor
  rm -rf "$dest"
  cp -a "$cache" "$dest"
  exit 0
fi

echo "preparing $dest: rdkafka-sys $version with patches/librdkafka/*.patch"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/fetch/src"
: > "$tmp/fetch/src/lib.rs"
cat > "$tmp/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-rdkafka-sys"
version = "0.0.0"
edition = "2021"

[dependencies]
rdkafka-sys = { version = "=${version%%+*}", default-features = false }
TOML
# `cargo vendor` copies the exact registry source (and its few small
# dependencies, which are not used) without building anything.
(cd "$tmp/fetch" && cargo vendor --quiet --versioned-dirs "$tmp/vendor" >/dev/null)
src="$tmp/vendor/rdkafka-sys-$version"
[ -d "$src/librdkafka" ] || { echo "patch-rdkafka-sys: $src has no librdkafka" >&2; exit 1; }
rm -f "$src/.cargo-checksum.json"
for p in patches/librdkafka/*.patch; do
  patch --quiet --forward -p1 -d "$src/librdkafka" < "$p"
done
# rdkafka-sys's build script copies librdkafka into its OUT_DIR once and
# builds there, so a changed patch would never reach an existing target/
# directory: make it start that copy afresh (a clean librdkafka build)
# whenever this stamp differs from the one it built.
perl -0pi -e 's|    if !Path::new\(&out_dir\).join\("LICENSE"\).exists\(\) \{\n|    let stamp = std::fs::read_to_string(".slaprobe-patched").unwrap_or_default();\n    let out_stamp = Path::new(&out_dir).join(".slaprobe-patched");\n    if std::fs::read_to_string(&out_stamp).unwrap_or_default() != stamp {\n        let _ = std::fs::remove_dir_all(&out_dir);\n        std::fs::create_dir_all(&out_dir).expect("OUT_DIR");\n    }\n    if !Path::new(&out_dir).join("LICENSE").exists() {\n|; s|(        run_command_or_fail\("\.", "cp", &\["-a", "librdkafka/\.", &out_dir\]\);\n)|$1        std::fs::write(&out_stamp, &stamp).expect("stamp");\n|' "$src/build.rs"
grep -q 'out_stamp, &stamp' "$src/build.rs" || { echo "patch-rdkafka-sys: rdkafka-sys's build.rs has changed; update this script" >&2; exit 1; }
echo "$stamp" > "$src/.slaprobe-patched"
mkdir -p vendor "$(dirname "$cache")"
rm -rf "$dest"
cp -a "$src" "$dest"
# Into the cache last and in one step (a rename), so that a run that stops
# half-way or a second run at the same time leaves no half-made copy there.
cp -a "$src" "$tmp/cached"
mv -T "$tmp/cached" "$cache" 2>/dev/null || true
