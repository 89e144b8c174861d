#!/usr/bin/env bash
# The main job: install what is missing, build (release), list devices and run the
# demo on every device found.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake --preset release
cmake --build --preset release -j"$(nproc)"
build/release/bin/ferry devices
build/release/bin/ferry demo
