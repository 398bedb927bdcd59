#!/usr/bin/env bash
# Creates the city CA, one certificate per node of a mesh and the city gateway's certificate,
# with node-agent itself.
#   deploy/bootstrap-certs.sh OUT_DIR CITY_CODE NODE_SPEC...
# where NODE_SPEC is level:org_code[:dns-name] (county:370202:county-shinan.example), e.g.
#   deploy/bootstrap-certs.sh /etc/renda/certs 370200 city:370200:renda-city county:370202 township:370202001
# The CA key (ca.key) must then be moved off the machine: it is needed again only to issue
# certificates for new nodes.
set -euo pipefail
out=${1:?output directory}; city=${2:?city code}; shift 2
agent=${NODE_AGENT:-node-agent}
"$agent" certs init-ca --out "$out" --city "$city"
for spec in "$@"; do
  IFS=: read -r level org dns <<<"$spec"
  args=(--ca "$out" --org "$org" --level "$level" --out "$out" --ip 127.0.0.1 --dns localhost)
  [ -n "${dns:-}" ] && args+=(--dns "$dns")
  "$agent" certs issue "${args[@]}"
done
# The gateways' client certificate (renda://gateway/<city>): nodes accept it for reports and
# log-in only. All gateway replicas of the city share it.
"$agent" certs issue-gateway --ca "$out" --out "$out"
echo "certificates in $out; keep ca.key offline"
