// indextap: MongoDB index recommendations (mongosh)
// Every index slows the writes of its collection: build during low traffic.

// shop.orders: serves 2 shapes, 150 executions, 402 ms total
db.getSiblingDB("shop").orders.createIndex({customer_id: 1, status: 1, created_at: -1}, {name: "customer_id_1_status_1_created_at_-1"})

// shop.tickets: serves 1 shape, 15 executions, 30.0 ms total
db.getSiblingDB("shop").tickets.createIndex({project_id: 1}, {name: "project_id_1_partial", partialFilterExpression: {closed_at: {$exists: true}}})

// shop.events: serves 1 shape, 6 executions, 18.0 ms total
db.getSiblingDB("shop").events.createIndex({kind: 1, at: 1}, {name: "kind_1_at_1"})

// Drop candidates: review before running.
// db.getSiblingDB("shop").users.dropIndex("tenant_id_1")  // prefix of tenant_id_1_created_at_-1

// Rollback:
// db.getSiblingDB("shop").orders.dropIndex("customer_id_1_status_1_created_at_-1")
// db.getSiblingDB("shop").tickets.dropIndex("project_id_1_partial")
// db.getSiblingDB("shop").events.dropIndex("kind_1_at_1")

// 3 PostgreSQL recommendations are in the sql export.

// note: existing PostgreSQL indexes were not read (no --pg-admin-url): an index may already exist
// note: HypoPG is not available on app: costs are not verified
// note: 3 MongoDB recommendation(s) not verified (MongoDB advice is measured only with --mongo-verify sample): customer_id_1_status_1_created_at_-1, kind_1_at_1, project_id_1_partial
