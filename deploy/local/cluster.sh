#!/usr/bin/env bash
# Starts the scale-out deployment on loopback, each part a process of its own: a 3-node NATS cluster
# (JetStream, R3), the registry, PVK, and two replicas each of the STS, introspection, the dispatcher and
# the gateway, all on the local PostgreSQL. The first gateway serves REST on 127.0.0.1:8080.
#
#   deploy/local/cluster.sh                       # data and logs in ./data/cluster
#   deploy/local/cluster.sh --replicas 3          # hnsec dev cluster --help lists the flags
#   deploy/local/cluster.sh -- --log-level debug  # flags after -- go to every `hnsec serve`
#
# Ctrl-C stops every process. The harness is services/hnsec/localcluster; the cluster test drives it too.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
make --no-print-directory build
exec bin/hnsec dev cluster --database-url "${HNSEC_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}" "$@"
