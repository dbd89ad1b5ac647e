#!/usr/bin/env bash
# Installs, if missing, the Debian 12 packages mediaspool needs to build and test:
# FFmpeg's development libraries (ffmpeg-next links them), clang/libclang for bindgen,
# pkg-config, and the tools the tests and fixtures use (ffmpeg CLI, espeak-ng; bash, zsh and
# fish to check the completion scripts, groff to render the manual pages; Chromium and its
# WebDriver for the browser tests of the status page and media cards).
# Idempotent: does nothing when everything is there.
set -euo pipefail

packages=(
  pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libavdevice-dev
  libswscale-dev libswresample-dev
  ffmpeg espeak-ng
  bash zsh fish groff-base
  chromium chromium-driver
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
