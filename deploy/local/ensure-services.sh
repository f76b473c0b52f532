#!/usr/bin/env bash
# Make sure the local PostgreSQL and RabbitMQ run and hold what Concord and its tests use.
# Idempotent and non-interactive; run as root (it starts system services).
set -euo pipefail

VHOSTS=(concord concord_test)
TEST_DATABASES=(concord_test_referral concord_test_case_management concord_test_justice_liaison
                concord_test_cross_border concord_test_gateway)

say() { echo "ensure-services: $*"; }

# --- PostgreSQL -------------------------------------------------------------------------
if ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
    if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        echo "PostgreSQL is not installed: apt-get install postgresql (or: docker compose up -d postgres-referral ...)" >&2
        exit 1
    fi
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 || { say "PostgreSQL did not start" >&2; exit 1; }
fi

# --- RabbitMQ ---------------------------------------------------------------------------
if ! command -v rabbitmqctl >/dev/null || ! command -v rabbitmq-server >/dev/null; then
    echo "RabbitMQ is not installed: apt-get install rabbitmq-server (or: docker compose up -d rabbitmq)" >&2
    exit 1
fi
# Every test namespace adds a virtual host and its queues, and at boot RabbitMQ opens every
# queue's index at once: with the usual 1024 open files its boot never ends (the log stops at
# "Mnesia is overloaded"). The node is started through su, which resets ulimits, so the raise
# lives in rabbitmq-env.conf, which the node's own start script sources.
env_conf=/etc/rabbitmq/rabbitmq-env.conf
if [ -d /etc/rabbitmq ] && ! grep -q 'ulimit -S -n' "$env_conf" 2>/dev/null; then
    echo 'ulimit -S -n "$(ulimit -H -n)" 2>/dev/null || true  # added by Concord' >>"$env_conf"
fi
# A node started before that line was there (the machine's own boot) keeps 1024, and the
# broker restarts in the fault tests wedge once a test run has left a few hundred queues
# (nameko's reply queues live 5 minutes): seen in CI. Replace such a node once.
want_files=8192
node_pid=$(pgrep -u rabbitmq -f 'beam.smp.*rabbit' | head -1 || true)
if [ -n "$node_pid" ] && [ "$(ulimit -Hn)" -ge "$want_files" ]; then
    node_files=$(awk '/^Max open files/ {print $4}' "/proc/$node_pid/limits" 2>/dev/null || echo 0)
    if [ "$node_files" -lt "$want_files" ]; then
        say "RabbitMQ runs with $node_files open files: restarting it with $(ulimit -Hn)"
        rabbitmqctl -q --timeout 60 stop >/dev/null 2>&1 || pkill -9 -f 'beam.smp.*rabbit' || true
        for _ in $(seq 30); do pgrep -f 'beam.smp.*rabbit' >/dev/null || break; sleep 1; done
    fi
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then
    if pgrep -f 'beam.smp.*rabbit' >/dev/null; then
        # A node exists but does not answer: give a boot in progress its chance, then
        # replace a node that is wedged (a stop_app/start_app that never finished).
        rabbitmqctl -q --timeout 120 await_startup >/dev/null 2>&1 ||
            { say "RabbitMQ is not answering: restarting it"; pkill -9 -f 'beam.smp.*rabbit'; sleep 2; }
    fi
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then
    say "starting RabbitMQ"
    # Each durable queue holds files open while the broker recovers it; with the common
    # default of 1024 descriptors a broker holding a few thousand queues (several test
    # namespaces) fails to start again with `emfile` (seen on this machine). Raise it.
    (ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; rabbitmq-server -detached)
    # await_startup needs the Erlang node to exist, which takes a moment after -detached.
    for _ in $(seq 30); do
        rabbitmqctl -q --timeout 60 await_startup >/dev/null 2>&1 && break
        sleep 2
    done
    rabbitmqctl -q status >/dev/null 2>&1 || { say "RabbitMQ did not start" >&2; exit 1; }
fi
# The management API (port 15672) is what nameko's test fixtures use.
if ! rabbitmq-plugins -q list -e -m 2>/dev/null | grep -qx rabbitmq_management; then
    say "enabling rabbitmq_management"
    rabbitmq-plugins -q enable rabbitmq_management >/dev/null
fi
existing_vhosts=$(rabbitmqctl -q list_vhosts name 2>/dev/null || true)
for vhost in "${VHOSTS[@]}"; do
    if ! grep -qx "$vhost" <<<"$existing_vhosts"; then
        say "adding RabbitMQ vhost $vhost"
        rabbitmqctl -q add_vhost "$vhost"
        rabbitmqctl -q set_permissions -p "$vhost" guest ".*" ".*" ".*"
    elif ! rabbitmqctl -q list_permissions -p "$vhost" 2>/dev/null | grep -q "^guest"; then
        rabbitmqctl -q set_permissions -p "$vhost" guest ".*" ".*" ".*"
    fi
done

# --- test databases ---------------------------------------------------------------------
psql_() { psql -h 127.0.0.1 -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
existing_dbs=$(psql_ -tAc "SELECT datname FROM pg_database")
for db in "${TEST_DATABASES[@]}"; do
    if ! grep -qx "$db" <<<"$existing_dbs"; then
        say "creating database $db"
        psql_ -c "CREATE DATABASE \"$db\""
    fi
done
say "PostgreSQL and RabbitMQ ready"
