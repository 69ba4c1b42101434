#!/bin/sh
# Run once by the postgres image when it creates the database: the app's own role (docs/data-protection.md, "Database roles"). Web,
# worker and beat connect as it; the `migrate` service, as the owner, grants it exactly its rights.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --set app_password="$APP_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE kelabooking_app LOGIN PASSWORD %L', :'app_password') \gexec
SQL
