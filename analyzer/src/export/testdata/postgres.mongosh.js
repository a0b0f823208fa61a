// indextap: MongoDB index recommendations (mongosh)
// Every index slows the writes of its collection: build during low traffic.

// No MongoDB index to add.

// 5 PostgreSQL recommendations are in the sql export.

// note: HypoPG is not available on reports: costs are not verified
