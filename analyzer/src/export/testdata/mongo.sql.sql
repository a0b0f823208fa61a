-- indextap: PostgreSQL index migration
-- CREATE INDEX CONCURRENTLY and DROP INDEX CONCURRENTLY cannot run inside a transaction block:
-- run each statement on its own (turn off your migration tool's transaction wrapper).

-- migrate:up

-- No PostgreSQL index to add.

-- migrate:down

-- 3 MongoDB recommendations are in the mongosh or pymongo export.

-- note: existing indexes of app.users could not be read
