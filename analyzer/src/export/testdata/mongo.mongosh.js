// indextap: MongoDB index recommendations (mongosh)
// Every index slows the writes of its collection: build during low traffic.

// app.orders: serves 2 shapes, 1244 executions, 59.2 ms total
db.getSiblingDB("app").orders.createIndex({status: 1, delivery_date: -1}, {name: "status_1_delivery_date_-1"})

// app.order-items: serves 1 shape, 40 executions, 12.0 ms total
db.getSiblingDB("app").getCollection("order-items").createIndex({"items.sku": 1}, {name: "items.sku_1_partial", partialFilterExpression: {email: {$exists: true}}})

// app.articles: serves 1 shape, 3 executions, 1.50 ms total
db.getSiblingDB("app").articles.createIndex({"$**": "text"}, {name: "$**_text"})

// Drop candidates: review before running.
// db.getSiblingDB("app").orders.dropIndex("status_1")  // prefix of status_1_delivery_date_-1

// Rollback:
// db.getSiblingDB("app").orders.dropIndex("status_1_delivery_date_-1")
// db.getSiblingDB("app").getCollection("order-items").dropIndex("items.sku_1_partial")
// db.getSiblingDB("app").articles.dropIndex("$**_text")

// note: existing indexes of app.users could not be read
