#!/usr/bin/env bash
# Installs the build into a temporary prefix, moves the whole tree elsewhere, and checks
# that it still works there: the CLI and ferry-conformance find libferry.so and the
# plugins relative to themselves, and a consumer builds against the moved tree with
# find_package(ferry) and with pkg-config.
set -euo pipefail
build_dir="$1"
source_dir="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" > "$work/install.log"
mv "$work/prefix" "$work/moved"
root="$work/moved"
libdir="$(cd "$root" && ls -d lib* | head -n 1)"

test -f "$root/include/ferry/ferry.h"
test -f "$root/include/ferry/backend.h"
test -f "$root/include/ferry/dtype_info.h"
test -f "$root/include/ferry/backend_v1.h"
test -f "$root/$libdir/cmake/ferry/ferryConfig.cmake"
test -f "$root/$libdir/pkgconfig/ferry.pc"
test -f "$root/$libdir/ferry/libferry-backend-cpu.so"

# The moved tree, with no environment help, finds its own plugins.
out="$(env -u FERRY_PLUGIN_PATH "$root/bin/ferry" devices)"
echo "$out"
grep -q "^cpu: 1 device" <<<"$out"
grep -q "$root/$libdir/ferry/libferry-backend-cpu.so" <<<"$out"
if [ -f "$root/$libdir/ferry/libferry-backend-sim.so" ]; then
  grep -q "^sim: 2 devices" <<<"$out"
fi
env -u FERRY_PLUGIN_PATH "$root/bin/ferry" demo cpu > "$work/demo.log"

# The installed conformance suite: its help, and every group on cpu.
test -x "$root/bin/ferry-conformance"
"$root/bin/ferry-conformance" --help > "$work/conformance-help.txt"
grep -q -- "--devices LIST" "$work/conformance-help.txt"
env -u FERRY_PLUGIN_PATH -u FERRY_TEST_REQUIRE -u FERRY_TEST_REQUIRE_BUILT \
  "$root/bin/ferry-conformance" --devices cpu > "$work/conformance.log" 2>&1 ||
  { cat "$work/conformance.log"; exit 1; }
grep -q "^\[  DEVICES \] FERRY_TEST_DEVICES=cpu" "$work/conformance.log"
grep -q "PASSED.*test(s)" "$work/conformance.log"
if grep -q "FAILED" "$work/conformance.log"; then cat "$work/conformance.log"; exit 1; fi

# find_package(ferry) from the moved tree.
cmake -S "$source_dir/tests/install/consumer" -B "$work/consumer" \
  -DCMAKE_PREFIX_PATH="$root" -DCMAKE_BUILD_TYPE=Release > "$work/consumer.log"
cmake --build "$work/consumer" > "$work/consumer-build.log"
"$work/consumer/consumer"

# pkg-config, pointed at the moved tree.
pc_flags="$(PKG_CONFIG_PATH="$root/$libdir/pkgconfig" pkg-config --cflags --libs ferry)"
cc -o "$work/pc_consumer" "$source_dir/tests/install/consumer/consumer.c" $pc_flags \
  -Wl,-rpath,"$root/$libdir"
"$work/pc_consumer"
# The optional kernels part: a plugin planning its launches with fk_plan builds from the
# moved tree alone (find_package(ferry COMPONENTS kernels)) and its kernel runs.
test -f "$root/include/ferry/kernels/fk_plan.h"
test -f "$root/include/ferry/kernels/ferry_kernels.h"
test -f "$root/share/ferry/kernels/fk_plan.c"
test -f "$root/$libdir/cmake/ferry/ferryKernelsTargets.cmake"
cmake -S "$source_dir/tests/install/kernels_plugin" -B "$work/kernels_plugin" \
  -DCMAKE_PREFIX_PATH="$root" -DCMAKE_BUILD_TYPE=Release > "$work/kernels-plugin.log"
cmake --build "$work/kernels_plugin" > "$work/kernels-plugin-build.log" ||
  { cat "$work/kernels-plugin-build.log"; exit 1; }
FERRY_PLUGIN_PATH="$work/kernels_plugin" FERRY_STRICT_DEVICE=tinyplan \
  "$work/kernels_plugin/check"

# Without the kernels part installed, find_package(ferry COMPONENTS kernels) fails and
# plain find_package(ferry) still works.
cmake --install "$build_dir" --prefix "$work/sdk_only" --component ferry_sdk > /dev/null
test ! -e "$work/sdk_only/include/ferry/kernels"
if cmake -S "$source_dir/tests/install/kernels_plugin" -B "$work/kernels_missing" \
    -DCMAKE_PREFIX_PATH="$work/sdk_only" > "$work/kernels-missing.log" 2>&1; then
  echo "find_package(ferry COMPONENTS kernels) passed without the kernels part"; exit 1
fi
cmake -S "$source_dir/tests/install/consumer" -B "$work/consumer_sdk_only" \
  -DCMAKE_PREFIX_PATH="$work/sdk_only" > "$work/consumer-sdk-only.log"
echo "install: 6 passed, 0 failed"
