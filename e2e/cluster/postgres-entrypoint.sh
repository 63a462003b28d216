#!/bin/sh
# The e2e PostgreSQL pod: on first start (no cluster in $PGDATA) a cluster whose every login takes a password, the
# role APP_USER (APP_PASSWORD) owning the database APP_DATABASE; then the server on all addresses, as PID 1, with
# the arguments given (`-c name=value` settings).
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    umask 077
    printf '%s' "$POSTGRES_PASSWORD" > /tmp/superuser-password
    initdb --pgdata="$PGDATA" --username=postgres --pwfile=/tmp/superuser-password --auth=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 --no-instructions
    rm /tmp/superuser-password
    echo 'host all all 0.0.0.0/0 scram-sha-256' >> "$PGDATA/pg_hba.conf"
    postgres -c listen_addresses= -c unix_socket_directories=/tmp "$@" &
    server=$!
    until pg_isready --host=/tmp --quiet; do sleep 0.2; done
    PGPASSWORD="$POSTGRES_PASSWORD" psql --host=/tmp --username=postgres --dbname=postgres --set=ON_ERROR_STOP=1 \
        --set=user="$APP_USER" --set=password="$APP_PASSWORD" --set=database="$APP_DATABASE" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"database" OWNER :"user";
SQL
    kill -INT "$server"
    wait "$server" || true
fi
exec postgres -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
