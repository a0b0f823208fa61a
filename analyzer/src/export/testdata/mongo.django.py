# indextap: Django model indexes
# Add each entry to Meta.indexes of the model for its table; names shown are column
# names (Django accepts "customer_id" for a ForeignKey "customer").
from django.db import models

# No PostgreSQL index to add.

# 3 MongoDB recommendations are in the mongosh or pymongo export.
