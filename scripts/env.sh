# Sourced by the other scripts, and by you (`source scripts/env.sh`, from any folder): a project virtualenv with
# everything installed, on PATH, and a local Dagster home. The install runs in a subshell, so your own shell keeps
# its options and its working directory, and a failed install does not close your terminal.
_cariflex_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if (
  set -euo pipefail
  cd "$_cariflex_root"
  PYTHON="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  stamp=.venv/.cariflex-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing cariflex_pipeline and its dependencies into .venv (first time: a minute or two)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    touch "$stamp"
  fi
); then
  export PATH="$_cariflex_root/.venv/bin:$PATH"
  export DAGSTER_HOME="${DAGSTER_HOME:-$_cariflex_root/.dagster_home}"
  mkdir -p "$DAGSTER_HOME"
  [ -f "$DAGSTER_HOME/dagster.yaml" ] || cp "$_cariflex_root/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
else
  echo "cariflex: setting up .venv failed (see above)" >&2
  false
fi
