#!/usr/bin/env bash
# Fails when C sources call a banned function (unbounded copies, unchecked conversions,
# non-reentrant helpers). Use tm_strlcpy, snprintf, tm_parse_int64 and strtok_r instead.
set -u
cd "$(dirname "$0")/.." || exit 1
banned='strcpy|strcat|strncpy|strncat|sprintf|vsprintf|gets|atoi|atol|atoll|atof|strtok|tmpnam|mktemp|asctime|ctime|gmtime|localtime'
files=$(git ls-files --cached --others --exclude-standard '*.c' '*.h')
[ -n "$files" ] || exit 0
# \b(name)\s*\( but not a longer identifier like snprintf or strtok_r or gmtime_r.
hits=$(grep -nE "(^|[^A-Za-z0-9_])($banned)[[:space:]]*\(" $files | grep -vE '//.*banned-ok' || true)
if [ -n "$hits" ]; then
  echo "check-banned: banned functions used:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "check-banned: ok"
