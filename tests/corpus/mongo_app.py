"""MongoDB workloads written with other people's code, run against SecantusDB.

- `blog`: a MongoEngine application (documents, references, query sets, `save()`).
- `whole_document`: driver-level code that updates a fetched document with the whole document
  (without `_id`) as the filter, an optimistic-concurrency habit of some ODMs: each variant of
  the document (an optional field present or not) is a filter of its own.
- `internal`: reads of `local.startup_log`, `admin.system.users` and `config.*`.
- `by_id`: a collection read and written only by `_id`, beside an index that nothing uses.

Every command sent is recorded (database, collection, filter, sort) with pymongo's command
monitoring into `--record FILE` (BSON: `{queries: [{database, collection, filter, sort}]}`), so the test can explain the same queries afterwards.

    python mongo_app.py --uri URI --workload NAME --phase seed|run [--rounds N] [--record F]
"""

import argparse
import datetime
import json

import pymongo
import bson
from pymongo import monitoring

parser = argparse.ArgumentParser()
parser.add_argument("--uri", required=True)
parser.add_argument("--workload", required=True)
parser.add_argument("--phase", choices=["seed", "run"], required=True)
parser.add_argument("--rounds", type=int, default=20)
parser.add_argument("--record")
args = parser.parse_args()

DATABASE = "corpus"
RECORDED = []


class Recorder(monitoring.CommandListener):
    def started(self, event):
        command = event.command
        name = event.command_name
        if name == "find":
            RECORDED.append((event.database_name, command["find"], command.get("filter", {}), command.get("sort")))
        elif name in ("update", "delete"):
            for statement in command.get("updates", command.get("deletes", [])):
                RECORDED.append((event.database_name, command[name], statement.get("q", {}), None))
        elif name == "count":
            RECORDED.append((event.database_name, command["count"], command.get("query", {}), None))
        elif name == "aggregate":
            pipeline = command.get("pipeline", [])
            if pipeline and "$match" in pipeline[0]:
                RECORDED.append((event.database_name, command["aggregate"], pipeline[0]["$match"], None))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


if args.record:
    monitoring.register(Recorder())


def blog(phase, rounds):
    import mongoengine as me

    me.connect(db=DATABASE, host=args.uri)

    class Author(me.Document):
        email = me.StringField(required=True, unique=True)
        name = me.StringField()
        country = me.StringField()
        meta = {"collection": "author"}

    class Post(me.Document):
        author = me.ReferenceField(Author)
        title = me.StringField()
        tags = me.ListField(me.StringField())
        published = me.BooleanField(default=False)
        created = me.DateTimeField()
        views = me.IntField(default=0)
        meta = {"collection": "post"}

    start = datetime.datetime(2024, 1, 1)
    if phase == "seed":
        authors = Author.objects.insert(
            [Author(email=f"a{n}@example.test", name=f"A{n}", country=f"c{n % 30}") for n in range(300)]
        )
        Post.objects.insert(
            [
                Post(
                    author=authors[n % 300],
                    title=f"post {n}",
                    tags=[f"t{n % 40}", f"t{n % 7}"],
                    published=n % 3 != 0,
                    created=start + datetime.timedelta(hours=n),
                )
                for n in range(3000)
            ]
        )
        return
    for n in range(rounds):
        author = Author.objects(email=f"a{n * 7 % 300}@example.test").first()
        list(Post.objects(author=author, published=True).order_by("-created")[:10])
        Post.objects(author=author).count()
        list(Post.objects(tags=f"t{n % 40}").order_by("-created")[:20])
        post = Post.objects(author=author).first()
        if post is not None:
            post.views += 1
            post.save()
        Author.objects(country=f"c{n % 30}").count()


WHOLE_FIELDS = ["w_id", "d_id", "c_id", "first", "last", "credit", "balance", "payment_cnt"]


def whole_document(phase, rounds):
    db = pymongo.MongoClient(args.uri).get_database(DATABASE)
    customers = db.customer
    if phase == "seed":
        documents = []
        for n in range(3000):
            document = {
                "w_id": 1,
                "d_id": n % 10 + 1,
                "c_id": n // 10 + 1,
                "first": f"first{n % 97}",
                "last": f"last{n % 500}",
                "credit": "GC" if n % 10 else "BC",
                "balance": -10.0,
                "payment_cnt": 1,
            }
            # Ten variants: one optional field, present on some documents only.
            document[f"extra_{n % 10}"] = n
            documents.append(document)
        customers.insert_many(documents)
        return
    for n in range(rounds):
        key = {"w_id": 1, "d_id": n % 10 + 1, "c_id": n * 7 % 300 + 1}
        fetched = customers.find_one(key)
        if fetched is None:
            continue
        filter_document = {k: v for k, v in fetched.items() if k != "_id"}
        customers.update_one(
            filter_document,
            {"$set": {"balance": fetched["balance"] - 1, "payment_cnt": fetched["payment_cnt"] + 1}},
        )
        # A sort on a field that no customer document has.
        list(customers.find({"w_id": 1, "d_id": n % 10 + 1}).sort("updated_at", -1).limit(5))


def internal(phase, rounds):
    client = pymongo.MongoClient(args.uri)
    if phase == "seed":
        return
    for _ in range(rounds):
        list(client.local.startup_log.find({"hostname": "h"}).sort("startTime", -1).limit(1))
        list(client.admin.get_collection("system.users").find({"user": "u", "db": "d"}))
        list(client.config.get_collection("settings").find({"_id": "balancer"}))
        list(client.get_database(DATABASE).get_collection("system.profile").find({"op": "query", "ns": "x"}))


def by_id(phase, rounds):
    db = pymongo.MongoClient(args.uri).get_database(DATABASE)
    sessions = db.session
    if phase == "seed":
        sessions.insert_many([{"_id": n, "user": n % 50, "data": "x" * 20} for n in range(2000)])
        sessions.create_index([("user", 1)], name="user_1")
        return
    for n in range(rounds):
        sessions.find_one({"_id": n * 13 % 2000})
        sessions.update_one({"_id": n * 13 % 2000}, {"$set": {"data": f"y{n}"}})
        sessions.insert_one({"_id": 10_000 + n, "user": n % 50, "data": "z"})


WORKLOADS = {"blog": blog, "whole_document": whole_document, "internal": internal, "by_id": by_id}
WORKLOADS[args.workload](args.phase, args.rounds)
if args.record:
    queries = []
    for database, collection, filter_document, sort in RECORDED:
        query = {"database": database, "collection": collection, "filter": filter_document}
        if sort is not None:
            query["sort"] = sort
        queries.append(query)
    with open(args.record, "wb") as out:
        out.write(bson.encode({"queries": queries}))
