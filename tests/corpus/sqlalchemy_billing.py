"""A small SQLAlchemy 2.0 billing model, its ORM's SQL sent through psycopg 3.

psycopg 3 binds parameters on the server (`$1`), so the soft-delete and paid flags reach
PostgreSQL as parameters, not as literals. SQLAlchemy creates no index for a foreign key.

    python sqlalchemy_billing.py --port P --database D --phase schema|workload [--rounds N]
"""

import datetime

from sqlalchemy import ForeignKey, create_engine, func, select, update, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import orm_cli  # tests/corpus, beside this script

args = orm_cli.arguments()


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int]
    email: Mapped[str]
    deleted: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime.datetime]


class Invoice(Base):
    __tablename__ = "invoice"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    tenant_id: Mapped[int]
    status: Mapped[str]
    due_at: Mapped[datetime.datetime]
    paid: Mapped[bool] = mapped_column(default=False)
    deleted: Mapped[bool] = mapped_column(default=False)
    amount: Mapped[int]


START = datetime.datetime(2024, 1, 1)
ACCOUNTS = 5000
INVOICES = 50000

engine = create_engine(
    f"postgresql+psycopg://postgres@127.0.0.1:{args.port}/{args.database}"
)


def schema():
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(
            Account(
                tenant_id=n % 50,
                email=f"a{n}@example.test",
                deleted=n % 25 == 0,
                created_at=START + datetime.timedelta(hours=n),
            )
            for n in range(ACCOUNTS)
        )
        session.flush()
        session.add_all(
            Invoice(
                account_id=n % ACCOUNTS + 1,
                tenant_id=(n % ACCOUNTS) % 50,
                status=["open", "sent", "void"][n % 3],
                due_at=START + datetime.timedelta(hours=7 * n),
                paid=n % 10 != 0,
                deleted=n % 30 == 0,
                amount=n % 900,
            )
            for n in range(INVOICES)
        )
        session.commit()
    with engine.connect() as connection:
        connection.execute(text("COMMIT"))
        connection.execute(text("ANALYZE"))


def workload(rounds):
    with Session(engine) as session:
        for n in range(rounds):
            account_id = n * 37 % ACCOUNTS + 1
            account = session.get(Account, account_id)
            session.scalars(
                select(Account).where(Account.email == f"a{n * 11 % ACCOUNTS}@example.test")
            ).first()
            session.scalars(
                select(Invoice)
                .where(Invoice.account_id == account_id, Invoice.deleted == False)  # noqa: E712
                .order_by(Invoice.due_at.desc())
            ).all()
            session.scalar(
                select(func.count())
                .select_from(Invoice)
                .where(
                    Invoice.tenant_id == n % 50,
                    Invoice.paid == False,  # noqa: E712
                    Invoice.due_at < START + datetime.timedelta(days=n % 400),
                )
            )
            session.execute(
                update(Invoice).where(Invoice.id == n * 101 % INVOICES + 1).values(status="sent")
            )
            if account is not None:
                session.expire(account)
            session.commit()


if args.phase == "schema":
    schema()
else:
    workload(args.rounds)
