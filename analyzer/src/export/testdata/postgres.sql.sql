-- indextap: PostgreSQL index migration
-- CREATE INDEX CONCURRENTLY and DROP INDEX CONCURRENTLY cannot run inside a transaction block:
-- run each statement on its own (turn off your migration tool's transaction wrapper).

-- migrate:up

-- app.public.runs: serves 1 shape, 900 executions, 450 ms total
CREATE INDEX CONCURRENTLY IF NOT EXISTS runs_customer_id_started_at_partial_idx ON "public"."runs" USING btree ("customer_id", "started_at" DESC NULLS LAST) INCLUDE ("status") WHERE "deleted_at" IS NULL AND "kind" IN ('QUEUED', 'PENDING');

-- app.public.users: serves 1 shape, 500 executions, 30.0 ms total
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_lower_email_idx ON "public"."users" USING btree ((lower("email")));

-- app.public.users: serves 1 shape, 20 executions, 25.0 ms total
-- needs the pg_trgm extension: CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_name_trgm_idx ON "public"."users" USING gin ("name" gin_trgm_ops);

-- app.public.users: serves 1 shape, 5 executions, 0.50 ms total
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_team_id_partial_idx ON "public"."users" USING btree ("team_id") WHERE "is_active" = true;

-- app.audit.events: serves 1 shape, 7 executions, 0.70 ms total
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_payload_gin_idx ON "audit"."events" USING gin ("payload");

-- Drop candidates: review before running.
-- DROP INDEX CONCURRENTLY IF EXISTS "public"."runs_customer_idx";  -- prefix of runs_customer_started_idx

-- migrate:down

DROP INDEX CONCURRENTLY IF EXISTS "audit"."events_payload_gin_idx";
DROP INDEX CONCURRENTLY IF EXISTS "public"."users_team_id_partial_idx";
DROP INDEX CONCURRENTLY IF EXISTS "public"."users_name_trgm_idx";
DROP INDEX CONCURRENTLY IF EXISTS "public"."users_lower_email_idx";
DROP INDEX CONCURRENTLY IF EXISTS "public"."runs_customer_id_started_at_partial_idx";

-- note: HypoPG is not available on reports: costs are not verified
