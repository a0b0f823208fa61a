# indextap: Django model indexes
# Add each entry to Meta.indexes of the model for its table; names shown are column
# names (Django accepts "customer_id" for a ForeignKey "customer").
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.contrib.postgres.indexes import GinIndex

# "audit"."events"
# serves 1 shape, 7 executions, 0.70 ms total
GinIndex(fields=["payload"], name="events_payload_gin_idx"),

# "public"."runs"
# serves 1 shape, 900 executions, 450 ms total
models.Index(F("customer_id"), F("started_at").desc(nulls_last=True), name="runs_customer_id_star_fa6216cf", include=["status"], condition=Q(deleted_at__isnull=True) & Q(kind__in=["QUEUED", "PENDING"])),

# "public"."users"
# serves 1 shape, 500 executions, 30.0 ms total
models.Index(Lower("email"), name="users_lower_email_idx"),
# serves 1 shape, 20 executions, 25.0 ms total
# needs the pg_trgm extension (TrigramExtension() in a migration)
GinIndex(fields=["name"], name="users_name_trgm_idx", opclasses=["gin_trgm_ops"]),
# serves 1 shape, 5 executions, 0.50 ms total
models.Index(fields=["team_id"], name="users_team_id_partial_idx", condition=Q(is_active=True)),
