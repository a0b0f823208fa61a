# indextap: MongoDB index recommendations (pymongo)
import pymongo

client = pymongo.MongoClient()  # pass your connection string

# shop.orders: serves 2 shapes, 150 executions, 402 ms total
client["shop"]["orders"].create_index([("customer_id", pymongo.ASCENDING), ("status", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)], name="customer_id_1_status_1_created_at_-1")

# shop.tickets: serves 1 shape, 15 executions, 30.0 ms total
client["shop"]["tickets"].create_index([("project_id", pymongo.ASCENDING)], name="project_id_1_partial", partialFilterExpression={"closed_at": {"$exists": True}})

# shop.events: serves 1 shape, 6 executions, 18.0 ms total
client["shop"]["events"].create_index([("kind", pymongo.ASCENDING), ("at", pymongo.ASCENDING)], name="kind_1_at_1")

# Drop candidates: review before running.
# client["shop"]["users"].drop_index("tenant_id_1")  # prefix of tenant_id_1_created_at_-1

# Rollback:
# client["shop"]["orders"].drop_index("customer_id_1_status_1_created_at_-1")
# client["shop"]["tickets"].drop_index("project_id_1_partial")
# client["shop"]["events"].drop_index("kind_1_at_1")

# 3 PostgreSQL recommendations are in the sql export.

# note: existing PostgreSQL indexes were not read (no --pg-admin-url): an index may already exist
# note: HypoPG is not available on app: costs are not verified
# note: 3 MongoDB recommendation(s) not verified (MongoDB advice is measured only with --mongo-verify sample): customer_id_1_status_1_created_at_-1, kind_1_at_1, project_id_1_partial
