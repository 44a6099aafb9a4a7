#!/bin/sh
# Refuse functions that invite overflows or hide errors in tapwork's C code.
set -u
cd "$(dirname "$0")/.."
pat='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atof|strtok|tmpnam|mktemp)[[:space:]]*\('
if grep -rnE "$pat" src fuzz tests/unit --include='*.c' --include='*.h'; then
  echo "banned functions used (see scripts/check-banned.sh)"; exit 1
fi
echo "banned-function check: ok"
