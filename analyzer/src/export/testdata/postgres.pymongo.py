# indextap: MongoDB index recommendations (pymongo)
import pymongo

client = pymongo.MongoClient()  # pass your connection string

# No MongoDB index to add.

# 5 PostgreSQL recommendations are in the sql export.

# note: HypoPG is not available on reports: costs are not verified
