-- indextap: PostgreSQL index migration
-- CREATE INDEX CONCURRENTLY and DROP INDEX CONCURRENTLY cannot run inside a transaction block:
-- run each statement on its own (turn off your migration tool's transaction wrapper).

-- migrate:up

-- app.public.runs: serves 1 shape, 90 executions, 450 ms total
CREATE INDEX CONCURRENTLY IF NOT EXISTS runs_customer_id_started_at_partial_idx ON "public"."runs" USING btree ("customer_id", "started_at" DESC) INCLUDE ("id", "status") WHERE "deleted_at" IS NULL;

-- app.public.users: serves 1 shape, 12 executions, 240 ms total
-- needs the pg_trgm extension: CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_name_trgm_idx ON "public"."users" USING gin ("name" gin_trgm_ops);

-- app.public.users: serves 1 shape, 40 executions, 32.0 ms total
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_lower_email_idx ON "public"."users" USING btree ((lower("email"))) INCLUDE ("id");

-- migrate:down

DROP INDEX CONCURRENTLY IF EXISTS "public"."users_lower_email_idx";
DROP INDEX CONCURRENTLY IF EXISTS "public"."users_name_trgm_idx";
DROP INDEX CONCURRENTLY IF EXISTS "public"."runs_customer_id_started_at_partial_idx";

-- 3 MongoDB recommendations are in the mongosh or pymongo export.

-- note: existing PostgreSQL indexes were not read (no --pg-admin-url): an index may already exist
-- note: HypoPG is not available on app: costs are not verified
-- note: 3 MongoDB recommendation(s) not verified (MongoDB advice is measured only with --mongo-verify sample): customer_id_1_status_1_created_at_-1, kind_1_at_1, project_id_1_partial
