# indextap: MongoDB index recommendations (pymongo)
import pymongo

client = pymongo.MongoClient()  # pass your connection string

# app.orders: serves 2 shapes, 1244 executions, 59.2 ms total
client["app"]["orders"].create_index([("status", pymongo.ASCENDING), ("delivery_date", pymongo.DESCENDING)], name="status_1_delivery_date_-1")

# app.order-items: serves 1 shape, 40 executions, 12.0 ms total
client["app"]["order-items"].create_index([("items.sku", pymongo.ASCENDING)], name="items.sku_1_partial", partialFilterExpression={"email": {"$exists": True}})

# app.articles: serves 1 shape, 3 executions, 1.50 ms total
client["app"]["articles"].create_index([("$**", pymongo.TEXT)], name="$**_text")

# Drop candidates: review before running.
# client["app"]["orders"].drop_index("status_1")  # prefix of status_1_delivery_date_-1

# Rollback:
# client["app"]["orders"].drop_index("status_1_delivery_date_-1")
# client["app"]["order-items"].drop_index("items.sku_1_partial")
# client["app"]["articles"].drop_index("$**_text")

# note: existing indexes of app.users could not be read
