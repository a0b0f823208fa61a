"""A small Django shop, its ORM's SQL sent to PostgreSQL through psycopg2.

Django's own DDL creates the tables (with the indexes Django adds by itself: the unique email
and the foreign key's index); its query sets make the workload.

    python django_shop.py --port P --database D --phase schema|workload [--rounds N]
"""

import datetime

import django
from django.conf import settings

import orm_cli  # tests/corpus, beside this script

args = orm_cli.arguments()

settings.configure(
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": args.database,
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": args.port,
        }
    },
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()

from django.db import connection, models  # noqa: E402


class Customer(models.Model):
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=100)
    country = models.CharField(max_length=2)

    class Meta:
        app_label = "shop"


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    status = models.CharField(max_length=10)
    created_at = models.DateTimeField()
    total = models.IntegerField()
    is_deleted = models.BooleanField(default=False)

    class Meta:
        app_label = "shop"


START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
CUSTOMERS = 4000
ORDERS = 40000
STATUSES = ["delivered"] * 45 + ["shipped"] * 3 + ["pending", "cancelled"]


def schema():
    with connection.schema_editor() as editor:
        editor.create_model(Customer)
        editor.create_model(Order)
    Customer.objects.bulk_create(
        Customer(email=f"c{n}@example.test", name=f"Customer {n}", country="ABCDEFGHIJKLMNOPQRST"[n % 20] * 2)
        for n in range(CUSTOMERS)
    )
    ids = list(Customer.objects.values_list("id", flat=True))
    Order.objects.bulk_create(
        (
            Order(
                customer_id=ids[n % len(ids)],
                status=STATUSES[n % len(STATUSES)],
                created_at=START + datetime.timedelta(minutes=13 * n),
                total=n % 500,
                is_deleted=n % 20 == 0,
            )
            for n in range(ORDERS)
        ),
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def workload(rounds):
    for n in range(rounds):
        customer = Customer.objects.get(email=f"c{n * 37 % CUSTOMERS}@example.test")
        Customer.objects.get(pk=customer.pk)
        day = START + datetime.timedelta(days=n % 300)
        # A shop is read far more than it is written: three page views per order placed.
        for _ in range(3):
            list(
                Order.objects.filter(customer=customer, is_deleted=False).order_by(
                    "-created_at"
                )[:10]
            )
            list(Order.objects.filter(status="pending").order_by("created_at")[:20])
            Order.objects.filter(
                created_at__gte=day, created_at__lt=day + datetime.timedelta(days=1)
            ).count()
        order = Order.objects.filter(customer=customer).first()
        if order is not None:
            Order.objects.filter(pk=order.pk).update(status="shipped")
        # The customer orders again: inserts time the write cost of the table's indexes.
        Order.objects.create(customer=customer, status="pending", created_at=day, total=n % 500)


if args.phase == "schema":
    schema()
else:
    workload(args.rounds)
