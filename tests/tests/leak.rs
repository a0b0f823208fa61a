//! No value from the traffic ever comes out of indextap.
//!
//! One test per engine: it plants unique marker strings and numbers ([`Markers`]) everywhere
//! a value can sit in that engine's traffic, including values the server quotes back in its
//! error messages, checks that they really reached the server (so the test can fail), waits
//! until the proxy has captured the traffic, and then searches every place indextap's output
//! can be read for them ([`indextap_tests::leak`]): the admin API in every format, the CLI,
//! the proxy's own logs at debug level, and the state file saved on SIGTERM.

mod mongo_common;

use bson::{doc, Bson, Document, Regex};
use indextap_tests::leak::{
    admin_answers, assert_no_marker, cli_outputs, exposure, json_log_levels, logs,
    stop_and_read_state,
};
use indextap_tests::postgres::{connect as pg_connect, number, param_refs, Params as PgParams};
use indextap_tests::secantus::find_existing;
use indextap_tests::{free_port, IndextapOptions, IndextapProcess, Markers, Postgres};
use mongo_common::{drain, shapes_on, wait_until, writes_on, MongoBehindProxy};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use tokio_postgres::types::ToSql;

/// What `/api/v1/shapes` counted on `database.collection`: executions and errors over its
/// shapes, and inserts.
fn captured(
    document: &serde_json::Value,
    database: &str,
    collection: &str,
) -> (u64, u64, Option<u64>) {
    let shapes = shapes_on(document, database, collection);
    let sum = |key: &str| shapes.iter().filter_map(|s| s[key].as_u64()).sum::<u64>();
    let inserts = writes_on(document, database, collection).and_then(|w| w["inserts"].as_u64());
    (sum("count"), sum("errors"), inserts)
}

/// The proxy as talkative as it gets. The short shutdown grace lets SIGTERM end the
/// connections the driver keeps open well within the fixture's own stop timeout. The write
/// cost of an index is a setting here, not measured: this test is about values, and an insert
/// timed on a loaded machine could price every candidate out and leave the advice formats
/// nothing to say.
const PROXY_ENV: [(&str, &str); 4] = [
    ("INDEXTAP_LOG_LEVEL", "debug"),
    ("RUST_LOG", "debug"),
    ("INDEXTAP_SHUTDOWN_GRACE_SECS", "1"),
    ("INDEXTAP_INDEX_WRITE_COST_US", "20"),
];

const MONGO_DATABASE: &str = "leak";
const MONGO_COLLECTION: &str = "people";

fn regex(pattern: &str) -> Regex {
    let cstring = |text: &str| {
        bson::raw::CString::try_from(text.to_string())
            .unwrap_or_else(|err| panic!("{text:?}: {err}"))
    };
    Regex {
        pattern: cstring(pattern),
        options: cstring(""),
    }
}

/// The error a server error message carries, as the driver shows it.
fn mongo_error<T: std::fmt::Debug>(result: mongodb::error::Result<T>, what: &str) -> String {
    match result {
        Ok(value) => panic!("{what} should fail on the server, got {value:?}"),
        Err(err) => format!("{err}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_values_never_leave_the_proxy() {
    let state_dir = tempfile::tempdir().expect("state dir");
    let state_path = state_dir.path().display().to_string();
    // Sample verification reads the marker-laden documents back: its probes and statistics
    // must not let them out either.
    let mut harness = MongoBehindProxy::start_with(
        &[
            "--log-format",
            "json",
            "--state-dir",
            &state_path,
            "--mongo-verify",
            "sample",
            "--mongo-sample-size",
            "200",
        ],
        &PROXY_ENV,
    )
    .await;
    let people: Collection<Document> = harness
        .client
        .database(MONGO_DATABASE)
        .collection(MONGO_COLLECTION);
    let mut markers = Markers::new();
    // Executions of shapes on the collection, counted as they are sent.
    let mut executions = 0_u64;

    // A unique index makes a duplicate insert fail with the key quoted back.
    harness
        .direct
        .database(MONGO_DATABASE)
        .collection::<Document>(MONGO_COLLECTION)
        .create_index(
            IndexModel::builder()
                .keys(doc! { "owner": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .expect("unique index");

    // Inserted documents.
    let owner = markers.string();
    let other_owner = markers.string();
    let amount = markers.number();
    let note = markers.string();
    let tag = markers.string();
    people
        .insert_many([
            doc! { "owner": &owner, "amount": amount, "note": &note, "tags": [&tag] },
            doc! { "owner": &other_owner, "amount": markers.number(), "note": markers.string() },
        ])
        .await
        .expect("insert_many");

    // Filters: equality, numbers, $in lists, a regex prefix and infix, a limit and a comment.
    for filter in [
        doc! { "owner": &owner },
        doc! { "amount": amount },
        doc! { "owner": { "$in": [markers.string(), &owner, markers.string()] } },
        doc! { "amount": { "$in": [markers.number(), amount] } },
        doc! { "note": regex(&format!("^{}", markers.string())) },
        doc! { "note": { "$regex": markers.string(), "$options": "i" } },
        doc! { "tags": { "$elemMatch": { "$eq": &tag } } },
        doc! { "$or": [ { "owner": markers.string() }, { "amount": { "$gt": markers.number() } } ] },
    ] {
        drain(people.find(filter).await.expect("find"))
            .await
            .expect("cursor");
        executions += 1;
    }
    // The lookup by amount, often enough that its index pays for the writes (at the set
    // cost): the advice then recommends it, measured on the sampled (marker) documents.
    for _ in 0..30 {
        drain(people.find(doc! { "amount": amount }).await.expect("find"))
            .await
            .expect("cursor");
        executions += 1;
    }
    let limited = people
        .find(doc! { "owner": &other_owner })
        .limit(markers.number())
        .comment(Bson::String(markers.string()))
        .await
        .expect("find with limit and comment");
    drain(limited).await.expect("cursor");
    executions += 1;

    // Updates: $set values, and a filter that is itself a marker.
    let new_note = markers.string();
    let score = markers.number();
    people
        .update_one(
            doc! { "owner": &owner },
            doc! { "$set": { "note": &new_note, "score": score } },
        )
        .await
        .expect("update_one");
    let flag = markers.string();
    people
        .update_many(
            doc! { "owner": { "$in": [&owner, markers.string()] } },
            doc! { "$set": { "flag": &flag } },
        )
        .await
        .expect("update_many");
    let modified = markers.string();
    people
        .find_one_and_update(
            doc! { "owner": &other_owner },
            doc! { "$set": { "modified": &modified } },
        )
        .await
        .expect("find_one_and_update");
    executions += 3;

    // Aggregates, counts, distinct, deletes.
    let pipeline = vec![
        doc! { "$match": { "owner": &owner, "amount": { "$lte": markers.number() } } },
        doc! { "$sort": { "amount": -1 } },
        doc! { "$limit": markers.number() },
        doc! { "$addFields": { "label": markers.string() } },
        doc! { "$lookup": {
            "from": MONGO_COLLECTION,
            "pipeline": [ { "$match": { "note": markers.string() } } ],
            "as": "same_note",
        } },
        doc! { "$group": { "_id": "$owner", "total": { "$sum": markers.number() } } },
    ];
    drain(people.aggregate(pipeline).await.expect("aggregate"))
        .await
        .expect("cursor");
    people
        .count_documents(doc! { "note": &new_note })
        .await
        .expect("count_documents");
    people
        .distinct("note", doc! { "amount": amount })
        .await
        .expect("distinct");
    people
        .delete_one(doc! { "owner": markers.string() })
        .await
        .expect("delete_one");
    executions += 4;

    // Server errors that quote the offending value back.
    let bad_increment = markers.string();
    let failed_update = mongo_error(
        people
            .update_one(
                doc! { "owner": &owner },
                doc! { "$inc": { "amount": &bad_increment } },
            )
            .await,
        "$inc with a string",
    );
    assert!(
        failed_update.contains(&bad_increment),
        "the server quotes the value: {failed_update}"
    );
    executions += 1;
    let failed_insert = mongo_error(
        people.insert_one(doc! { "owner": &owner }).await,
        "a duplicate key",
    );
    assert!(
        failed_insert.contains(&owner),
        "the server quotes the key: {failed_insert}"
    );
    let bad_type = markers.string();
    let failed_find = mongo_error(
        people
            .find_one(doc! { "owner": { "$type": &bad_type } })
            .await,
        "$type with an unknown alias",
    );
    assert!(
        failed_find.contains(&bad_type),
        "the server quotes the alias: {failed_find}"
    );

    // The values really reached the server.
    let stored = harness
        .direct
        .database(MONGO_DATABASE)
        .collection::<Document>(MONGO_COLLECTION);
    let mine = find_existing(&stored, doc! { "owner": &owner }).await;
    assert_eq!(mine.get_str("note").ok(), Some(new_note.as_str()));
    assert_eq!(mine.get_i64("score").ok(), Some(score));
    assert_eq!(mine.get_str("flag").ok(), Some(flag.as_str()));
    let theirs = find_existing(&stored, doc! { "owner": &other_owner }).await;
    assert_eq!(theirs.get_str("modified").ok(), Some(modified.as_str()));

    // The proxy captured all of it: every execution, the failed update, the rejected filter.
    wait_until("the leak workload in /api/v1/shapes", || {
        let document = harness.shapes_document();
        let (count, errors, inserts) = captured(&document, MONGO_DATABASE, MONGO_COLLECTION);
        let rejected = document["rejected"]["malformed_filter"].as_u64();
        if count == executions && errors >= 1 && inserts >= Some(2) && rejected == Some(1) {
            Ok(())
        } else {
            Err(format!(
                "executions {count}/{executions}, errors {errors}, inserts {inserts:?}, \
                 rejected {rejected:?}\n{document:#}"
            ))
        }
    });

    // Sample verification really ran on the marker-laden documents: a recommendation
    // carries what it measured on them, so the checks below cover its probes and statistics.
    let advice = harness.recommendations();
    let sampled = advice["recommendations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["database"] == MONGO_DATABASE)
        .filter(|r| r["evidence"]["method"] == "sample")
        .filter_map(|r| r["evidence"]["sample_size"].as_u64())
        .max();
    assert!(
        sampled >= Some(2),
        "no recommendation was measured on a sample of the inserted documents: {advice:#}"
    );
    let mut exposures = admin_answers(&harness.proxy).expect("admin API");
    exposures.extend(cli_outputs(&harness.admin_url()).expect("CLI"));
    exposures.push(logs(&harness.proxy));
    exposure(&exposures, "GET /api/v1/shapes").non_empty(MONGO_COLLECTION);
    exposure(&exposures, "GET /api/v1/snapshot").non_empty(MONGO_COLLECTION);
    exposure(&exposures, "GET /metrics").non_empty("indextap");
    exposure(&exposures, "GET /api/v1/recommendations?format=mongosh").non_empty("createIndex");
    exposure(&exposures, "proxy logs").non_empty("MongoDB listener ready");
    assert_no_marker(&markers, &exposures);

    // On SIGTERM the state is saved; neither it nor the shutdown's log lines hold a value.
    let state = stop_and_read_state(&mut harness.proxy, state_dir.path()).expect("state file");
    state.non_empty(MONGO_COLLECTION);
    let final_logs = logs(&harness.proxy);
    assert_no_marker(&markers, &[state, final_logs.clone()]);

    // The logs were JSON, and verbose: debug lines were written.
    let levels = json_log_levels(&final_logs.text).expect("JSON logs");
    assert!(
        levels.contains("DEBUG"),
        "no debug line in the logs: {levels:?}"
    );
}

const PG_DATABASE: &str = "leak";
const PG_TABLE: &str = "people";

/// Runs `sql` with the extended protocol; the server's error, if any, as the client shows it.
async fn pg_extended(
    client: &tokio_postgres::Client,
    sql: &str,
    params: PgParams,
) -> Result<u64, String> {
    client
        .execute(sql, &param_refs(&params))
        .await
        .map_err(|err| format!("{err:?}"))
}

/// Runs `sql` as a simple query; the server's error, if any, as the client shows it.
async fn pg_simple(client: &tokio_postgres::Client, sql: &str) -> Result<(), String> {
    client
        .simple_query(sql)
        .await
        .map(drop)
        .map_err(|err| format!("{err:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_values_never_leave_the_proxy() {
    let server = Postgres::start();
    server
        .create_database(PG_DATABASE)
        .expect("create database");
    let direct = pg_connect(&server.connection_string(PG_DATABASE)).await;
    // Enough filler rows (no markers) that the advice recommends indexes, verified with
    // HypoPG, so the advice formats have something to say.
    direct
        .batch_execute(
            "CREATE TABLE people (id bigserial PRIMARY KEY, owner text UNIQUE, amount bigint,
                 note text, payload jsonb, created_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO people (owner, amount, note, payload)
             SELECT 'filler-' || g, g, 'note ' || g, jsonb_build_object('k', g)
               FROM generate_series(1, 20000) AS g;
             ANALYZE people;",
        )
        .await
        .expect("schema");

    let state_dir = tempfile::tempdir().expect("state dir");
    let state_path = state_dir.path().display().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let upstream = server.addr().to_string();
    let admin_url = server.url("postgres");
    let mut proxy = IndextapProcess::start_with(IndextapOptions {
        args: [
            "proxy",
            "--pg-listen",
            &listen,
            "--pg-upstream",
            &upstream,
            "--pg-admin-url",
            &admin_url,
            "--admin-listen",
            &admin,
            "--state-dir",
            &state_path,
            "--log-format",
            "json",
        ]
        .map(str::to_string)
        .to_vec(),
        env: PROXY_ENV
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        ..IndextapOptions::default()
    });
    let mut markers = Markers::new();
    // The startup packet carries a value too.
    let application = markers.string();
    let through = format!(
        "{} application_name={application}",
        server.connection_string_via(listen.parse().expect("listen address"), PG_DATABASE)
    );
    let client = pg_connect(&through).await;
    // Executions of shapes on the table, counted as they are sent.
    let mut executions = 0_u64;
    let mut inserted = 0_u64;

    // Inserts: bound parameters, literals, and COPY rows.
    let owner = markers.string();
    let amount = markers.number();
    let note = markers.string();
    let key = markers.string();
    pg_extended(
        &client,
        "INSERT INTO people (owner, amount, note, payload) VALUES ($1, $2, $3, $4::text::jsonb)",
        vec![
            Box::new(owner.clone()),
            Box::new(amount),
            Box::new(note.clone()),
            Box::new(format!(r#"{{"k": "{key}"}}"#)),
        ],
    )
    .await
    .expect("insert with parameters");
    let literal_owner = markers.string();
    let literal_amount = markers.number();
    pg_simple(
        &client,
        &format!(
            "INSERT INTO people (owner, amount, note) VALUES ('{literal_owner}', {literal_amount}, '{}')",
            markers.string()
        ),
    )
    .await
    .expect("insert with literals");
    inserted += 2;
    let copied_owner = markers.string();
    let copy = client
        .copy_in::<_, bytes::Bytes>("COPY people (owner, amount, note) FROM STDIN")
        .await
        .expect("COPY FROM STDIN");
    let rows = format!(
        "{copied_owner}\t{}\t{}\n{}\t{}\t{}\n",
        markers.number(),
        markers.string(),
        markers.string(),
        markers.number(),
        markers.string()
    );
    futures::pin_mut!(copy);
    futures::SinkExt::send(&mut copy, bytes::Bytes::from(rows))
        .await
        .expect("COPY rows");
    assert_eq!(copy.finish().await.expect("COPY done"), 2);

    // Selects: literals and parameters, IN lists, LIKE, ILIKE, jsonb, expressions, LIMIT.
    for sql in [
        format!("SELECT * FROM people WHERE owner = '{owner}'"),
        format!("SELECT id FROM people WHERE amount = {amount}"),
        format!(
            "SELECT id FROM people WHERE owner IN ('{}', '{owner}', '{}')",
            markers.string(),
            markers.string()
        ),
        format!("SELECT id FROM people WHERE note LIKE '{}%'", markers.string()),
        format!("SELECT id FROM people WHERE note ILIKE '%{}%'", markers.string()),
        format!("SELECT id FROM people WHERE payload->>'k' = '{key}'"),
        format!(r#"SELECT id FROM people WHERE payload @> '{{"k": "{key}"}}'"#),
        format!(
            "SELECT id FROM people WHERE lower(note) = '{}' AND amount > {} ORDER BY created_at DESC LIMIT {}",
            markers.string(),
            markers.number(),
            markers.number()
        ),
    ] {
        pg_simple(&client, &sql).await.expect("select with literals");
        executions += 1;
    }
    for (sql, params) in [
        (
            "SELECT * FROM people WHERE owner = $1",
            vec![Box::new(owner.clone()) as Box<dyn ToSql + Sync + Send>],
        ),
        (
            "SELECT id FROM people WHERE amount = $1 OR note = $2",
            vec![Box::new(amount) as _, Box::new(note.clone()) as _],
        ),
        (
            "SELECT id FROM people WHERE owner = ANY($1) LIMIT $2",
            vec![
                Box::new(vec![owner.clone(), markers.string()]) as _,
                Box::new(markers.number()) as _,
            ],
        ),
        (
            "SELECT id FROM people WHERE lower(note) = $1 ORDER BY created_at DESC",
            vec![Box::new(markers.string()) as _],
        ),
    ] {
        pg_extended(&client, sql, params)
            .await
            .expect("select with parameters");
        executions += 1;
    }

    // Updates: literals and parameters.
    let new_note = markers.string();
    pg_simple(
        &client,
        &format!("UPDATE people SET note = '{new_note}' WHERE owner = '{owner}'"),
    )
    .await
    .expect("update with literals");
    let new_amount = markers.number();
    pg_extended(
        &client,
        "UPDATE people SET amount = $1 WHERE owner = $2",
        vec![Box::new(new_amount), Box::new(owner.clone())],
    )
    .await
    .expect("update with parameters");
    executions += 2;

    // Server errors that quote the offending value back: a unique violation (bound and
    // literal), and a literal that is not a number.
    for failure in [
        pg_extended(
            &client,
            "INSERT INTO people (owner) VALUES ($1)",
            vec![Box::new(owner.clone())],
        )
        .await
        .map(drop),
        pg_simple(
            &client,
            &format!("INSERT INTO people (owner) VALUES ('{literal_owner}')"),
        )
        .await,
    ] {
        let error = failure.expect_err("a duplicate owner is refused");
        assert!(error.contains("unique"), "{error}");
    }
    let not_a_number = markers.string();
    let error = pg_simple(
        &client,
        &format!("SELECT id FROM people WHERE amount = '{not_a_number}'"),
    )
    .await
    .expect_err("not a number");
    assert!(
        error.contains(&not_a_number),
        "the server quotes it: {error}"
    );
    executions += 1;
    // SQL the analyzer cannot parse, holding a value: rejected, and nothing of it kept.
    pg_simple(
        &client,
        &format!(
            "SELECT id FROM people WHERE owner = '{}' FOR NO KEY UPDATE SKIP LOCKED",
            markers.string()
        ),
    )
    .await
    .expect("PostgreSQL parses it");

    // The values really reached the server.
    let row = direct
        .query_one(
            "SELECT amount, note, payload->>'k' FROM people WHERE owner = $1",
            &[&owner],
        )
        .await
        .expect("the inserted row");
    assert_eq!(row.get::<_, i64>(0), new_amount);
    assert_eq!(row.get::<_, String>(1), new_note);
    assert_eq!(row.get::<_, String>(2), key);
    for planted in [&literal_owner, &copied_owner] {
        let found = number(
            &direct,
            "SELECT count(*) FROM people WHERE owner = $1",
            &[planted],
        )
        .await;
        assert_eq!(found, 1, "{planted} was stored");
    }
    let applications = number(
        &direct,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
        &[&application],
    )
    .await;
    assert_eq!(applications, 1, "the startup parameter reached the server");

    // The proxy captured all of it.
    wait_until("the PostgreSQL leak workload in /api/v1/shapes", || {
        let document = proxy.shapes_document().map_err(|err| format!("{err:#}"))?;
        let (count, errors, inserts) = captured(&document, PG_DATABASE, PG_TABLE);
        let rejected = document["rejected"]["sql_parse_error"].as_u64();
        if count == executions && errors >= 1 && inserts >= Some(inserted) && rejected == Some(1) {
            Ok(())
        } else {
            Err(format!(
                "executions {count}/{executions}, errors {errors}, inserts {inserts:?}, \
                 rejected {rejected:?}\n{document:#}"
            ))
        }
    });

    let admin_url = format!("http://{}", proxy.admin_addr());
    let mut exposures = admin_answers(&proxy).expect("admin API");
    exposures.extend(cli_outputs(&admin_url).expect("CLI"));
    exposures.push(logs(&proxy));
    exposure(&exposures, "GET /api/v1/shapes").non_empty(PG_TABLE);
    exposure(&exposures, "GET /api/v1/snapshot").non_empty(PG_TABLE);
    exposure(&exposures, "GET /metrics").non_empty("indextap");
    exposure(&exposures, "GET /api/v1/recommendations?format=sql")
        .non_empty("CREATE INDEX CONCURRENTLY");
    exposure(&exposures, "GET /api/v1/recommendations?format=markdown").non_empty(PG_TABLE);
    exposure(&exposures, "GET /api/v1/recommendations").non_empty("hypopg");
    exposure(&exposures, "proxy logs").non_empty("PostgreSQL listener ready");
    assert_no_marker(&markers, &exposures);

    // On SIGTERM the state is saved; neither it nor the shutdown's log lines hold a value.
    drop(client);
    let state = stop_and_read_state(&mut proxy, state_dir.path()).expect("state file");
    state.non_empty(PG_TABLE);
    let final_logs = logs(&proxy);
    assert_no_marker(&markers, &[state, final_logs.clone()]);
    let levels = json_log_levels(&final_logs.text).expect("JSON logs");
    assert!(
        levels.contains("DEBUG"),
        "no debug line in the logs: {levels:?}"
    );
}
