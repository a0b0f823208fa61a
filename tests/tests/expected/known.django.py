# indextap: Django model indexes
# Add each entry to Meta.indexes of the model for its table; names shown are column
# names (Django accepts "customer_id" for a ForeignKey "customer").
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.contrib.postgres.indexes import GinIndex

# 3 MongoDB recommendations are in the mongosh or pymongo export.

# "public"."runs"
# serves 1 shape, 90 executions, 450 ms total
models.Index(fields=["customer_id", "-started_at"], name="runs_customer_id_star_fa6216cf", include=["id", "status"], condition=Q(deleted_at__isnull=True)),

# "public"."users"
# serves 1 shape, 12 executions, 240 ms total
# needs the pg_trgm extension (TrigramExtension() in a migration)
GinIndex(fields=["name"], name="users_name_trgm_idx", opclasses=["gin_trgm_ops"]),
# serves 1 shape, 40 executions, 32.0 ms total
models.Index(Lower("email"), name="users_lower_email_idx", include=["id"]),
