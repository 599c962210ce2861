#!/usr/bin/env bash
# Idempotent set-up for a fresh machine of this project's kind (Debian, root,
# Python >= 3.10 with pip). Installs the CPU torch wheel *before* the project
# so pip never resolves a multi-GB CUDA build, then the project, then the
# Debian TeX packages the paper needs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

$PY -m pip install -q --disable-pip-version-check "torch==2.13.0"
$PY -m pip install -q --disable-pip-version-check -e ".[dev,hf]"

need_tex=0
for tool in latexmk pdflatex pdftoppm; do command -v "$tool" >/dev/null 2>&1 || need_tex=1; done
if [ "$need_tex" = 1 ] && [ "${MDTHEORY_SKIP_TEX:-0}" != 1 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    texlive-latex-base texlive-latex-recommended texlive-fonts-recommended \
    latexmk poppler-utils >/dev/null
fi
echo "setup: ok ($($PY -c 'import torch; print("torch", torch.__version__)'))"
