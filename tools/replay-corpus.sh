#!/usr/bin/env bash
# replay-corpus.sh DATA_DIR OUT_DIR - feeds the demo agents of 'make run': every second
# appends the next few lines of the sample corpus to OUT_DIR/eve.json (Suricata EVE),
# OUT_DIR/auth.log (sshd) and OUT_DIR/firewall.cef (CEF), starting over at the end of each
# sample, so the dashboard has a live stream. Time stamps are rewritten to the current time
# (EVE "timestamp", the syslog header of auth.log lines) so that the events fall into
# today's windows, as live ones would. Runs until killed.
set -eu
data=$1
out=$2
eve=$data/suricata/eve-formbook-dridex.json
auth=$data/syslog/loghub-OpenSSH_2k.log
cef=$data/cef/logstash-codec-cef-spec-samples.cef
for f in "$eve" "$auth" "$cef"; do
  [ -r "$f" ] || { echo "replay-corpus: cannot read '$f'" >&2; exit 1; }
done
neve=$(wc -l <"$eve")
nauth=$(wc -l <"$auth")
ncef=$(wc -l <"$cef")
i=0
while :; do
  # Lines i*k+1 .. (i+1)*k of each sample, wrapping around.
  now_eve=$(date -u +%Y-%m-%dT%H:%M:%S.%6N+0000)
  now_syslog=$(date +'%b %e %H:%M:%S')
  sed -n "$((i * 5 % neve + 1)),$((i * 5 % neve + 5))p" "$eve" |
    sed "s/\"timestamp\":\"[^\"]*\"/\"timestamp\":\"$now_eve\"/" >>"$out/eve.json"
  sed -n "$((i * 25 % nauth + 1)),$((i * 25 % nauth + 25))p" "$auth" |
    sed "s/^[A-Z][a-z][a-z] [ 0-9][0-9] [0-9:]\{8\}/$now_syslog/" >>"$out/auth.log"
  sed -n "$((i % ncef + 1))p" "$cef" >>"$out/firewall.cef"
  i=$((i + 1))
  sleep 1
done
