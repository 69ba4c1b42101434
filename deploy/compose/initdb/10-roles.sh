#!/bin/sh
# Run once by the postgres image when it creates the database (docs/data-protection.md, "Database roles"): the owner
# of the app's schema, which `migrate` connects as, and the app's own role, which web, worker and beat connect as and
# to which `migrate` grants exactly its rights. Neither is a superuser: the image's superuser (POSTGRES_USER) is for
# operators, and nothing of the app connects as it.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set owner_password="$OWNER_DB_PASSWORD" --set app_password="$APP_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE kelabooking LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'owner_password') \gexec
SELECT format('CREATE ROLE kelabooking_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'app_password') \gexec
ALTER DATABASE kelabooking OWNER TO kelabooking;
ALTER SCHEMA public OWNER TO kelabooking;
SQL
