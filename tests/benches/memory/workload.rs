//! The benchmark's traffic: distinct shapes for both engines, idle client connections, and
//! large frames from many connections at once.

use std::net::SocketAddr;

use anyhow::Context;
use bson::{doc, Document};
use futures::stream::{self, StreamExt, TryStreamExt};
use indextap_tests::Postgres;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The PostgreSQL database the statements run in.
pub(crate) const DATABASE: &str = "bench";
/// Tables, and integer columns per table: 20 × 100 = 2,000 distinct (table, column) pairs.
const TABLES: usize = 20;
const COLUMNS: usize = 100;
/// MongoDB collections the filters spread over.
const COLLECTIONS: usize = 50;
/// How many connections open at once.
const OPENING: usize = 32;

pub(crate) fn create_tables(postgres: &Postgres) -> anyhow::Result<()> {
    postgres.create_database(DATABASE)?;
    let columns: Vec<String> = (0..COLUMNS).map(|c| format!("c{c} int")).collect();
    let mut script = String::new();
    for table in 0..TABLES {
        script.push_str(&format!(
            "CREATE TABLE t{table} (id serial PRIMARY KEY, {});\n",
            columns.join(", ")
        ));
    }
    postgres.psql_in(DATABASE, &["-c", &script])?;
    Ok(())
}

/// `count` distinct `find` filters, each run once: collection `i % 50`, an equality on a
/// field of its own, and a range and a sort every shape shares.
pub(crate) async fn mongo_shapes(uri: &str, count: usize) -> anyhow::Result<()> {
    let client = mongodb::Client::with_uri_str(uri).await?;
    let db = client.database("bench");
    stream::iter(0..count)
        .map(|i| {
            let collection = db.collection::<Document>(&format!("c{}", i % COLLECTIONS));
            async move {
                let mut filter = Document::new();
                filter.insert(format!("f{}", i / COLLECTIONS), i as i64);
                filter.insert("at", doc! { "$gte": 0 });
                let found: Vec<Document> = collection
                    .find(filter)
                    .sort(doc! { "at": -1 })
                    .limit(10)
                    .await?
                    .try_collect()
                    .await?;
                anyhow::Ok(found.len())
            }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<_>>()
        .await
        .context("MongoDB shapes")?;
    Ok(())
}

/// `count` distinct statements (prepared, extended protocol): table `i % 20`, an equality on
/// one of its columns.
pub(crate) async fn sql_shapes(connection: &str, count: usize) -> anyhow::Result<()> {
    let (client, task) = tokio_postgres::connect(connection, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(task);
    for i in 0..count {
        let (table, column) = (i % TABLES, (i / TABLES) % COLUMNS);
        let sql = format!("SELECT id FROM t{table} WHERE c{column} = $1 ORDER BY id LIMIT 5");
        client
            .query(&sql, &[&(i as i32)])
            .await
            .with_context(|| format!("statement {i}"))?;
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// Open client connections kept idle; dropped to close them.
pub(crate) struct Idle {
    _mongo: Vec<TcpStream>,
    _postgres: Vec<(tokio_postgres::Client, tokio::task::JoinHandle<()>)>,
}

/// `mongo` MongoDB connections that said `hello` (as a driver's pooled connection does) and
/// `postgres` PostgreSQL sessions that completed startup, all left idle.
pub(crate) async fn idle_connections(
    mongo_addr: SocketAddr,
    pg_connection: &str,
    mongo: usize,
    postgres: usize,
) -> anyhow::Result<Idle> {
    let mongo = stream::iter(0..mongo)
        .map(|i| hello(mongo_addr, i as i32))
        .buffer_unordered(OPENING)
        .try_collect::<Vec<_>>()
        .await
        .context("idle MongoDB connections")?;
    let postgres = stream::iter(0..postgres)
        .map(|_| async {
            let (client, task) =
                tokio_postgres::connect(pg_connection, tokio_postgres::NoTls).await?;
            let driver = tokio::spawn(async move {
                let _ = task.await;
            });
            anyhow::Ok((client, driver))
        })
        .buffer_unordered(OPENING)
        .try_collect::<Vec<_>>()
        .await
        .context("idle PostgreSQL connections")?;
    Ok(Idle {
        _mongo: mongo,
        _postgres: postgres,
    })
}

/// A connection that sent one OP_MSG `hello` and read the reply.
async fn hello(addr: SocketAddr, request_id: i32) -> anyhow::Result<TcpStream> {
    let mut body = Vec::new();
    doc! { "hello": 1, "$db": "admin" }.to_writer(&mut body)?;
    let length = i32::try_from(16 + 4 + 1 + body.len())?;
    let mut frame = Vec::new();
    for field in [length, request_id, 0, 2013] {
        frame.extend_from_slice(&field.to_le_bytes());
    }
    frame.extend_from_slice(&0u32.to_le_bytes());
    frame.push(0);
    frame.extend_from_slice(&body);
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(&frame).await?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let reply = usize::try_from(i32::from_le_bytes(header))?.saturating_sub(4);
    let mut rest = vec![0u8; reply];
    stream.read_exact(&mut rest).await?;
    Ok(stream)
}

/// `connections` clients at once (half PostgreSQL, half MongoDB), each sending `rounds`
/// requests of `bytes` bytes: a simple Query `SELECT length('…')`, and a `find` whose
/// filter holds a string that long. Each request is spread over many reads, so the proxy
/// gathers it for inspection within its budget. Every reply is checked.
pub(crate) async fn large_frames(
    pg_conninfo: &str,
    mongo_uri: &str,
    connections: usize,
    bytes: usize,
    rounds: usize,
) -> anyhow::Result<()> {
    let text = "x".repeat(bytes);
    let statement = format!("SELECT length('{text}')");
    let mongo = mongodb::Client::with_uri_str(format!(
        "{mongo_uri}&maxPoolSize={connections}&minPoolSize={}",
        connections / 2
    ))
    .await?;
    let collection = mongo.database("bench").collection::<Document>("large");
    let pg = stream::iter(0..connections / 2).map(|_| {
        let statement = statement.clone();
        async move {
            let (client, connection) =
                tokio_postgres::connect(pg_conninfo, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            for _ in 0..rounds {
                let rows = client.simple_query(&statement).await?;
                let length = rows.iter().find_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                });
                anyhow::ensure!(length == Some(bytes.to_string()), "length {length:?}");
            }
            anyhow::Ok(())
        }
    });
    let finds = stream::iter(0..connections - connections / 2).map(|_| {
        let (collection, text) = (collection.clone(), text.clone());
        async move {
            for _ in 0..rounds {
                let found: Vec<Document> = collection
                    .find(doc! { "blob": &text })
                    .await?
                    .try_collect()
                    .await?;
                anyhow::ensure!(found.is_empty(), "{} found", found.len());
            }
            anyhow::Ok(())
        }
    });
    let (pg, finds) = tokio::join!(
        pg.buffer_unordered(connections).try_collect::<Vec<_>>(),
        finds.buffer_unordered(connections).try_collect::<Vec<_>>()
    );
    pg.context("the PostgreSQL large statements")?;
    finds.context("the MongoDB large finds")?;
    mongo.shutdown().await;
    Ok(())
}
