#!/bin/sh
# Container entrypoint: with arguments, run them (`docker compose run --rm gateway concord
# seed`); without, bring this service's database to its newest migration, then become the
# service (exec: nameko gets the container's SIGTERM and stops gracefully).
set -eu
if [ "$#" -gt 0 ]; then
    exec "$@"
fi
: "${CONCORD_SERVICE:?set CONCORD_SERVICE to the service this container runs}"
concord migrate "$CONCORD_SERVICE"
exec nameko run --config /app/deploy/config.yaml "$CONCORD_SERVICE.service"
