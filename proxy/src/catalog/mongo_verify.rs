//! `--mongo-verify sample`: MongoDB candidates measured on a sample of each collection.
//!
//! A `$sample` of every collection a recommendation covers is copied into a scratch
//! database, with the collection's existing indexes. Each served shape is run again with
//! values taken from a few sampled documents (`mongo::probe`), and `explain`
//! (`executionStats`) counts the documents it examines without and with the candidate.
//! Candidates are measured best first; one that pays stays built while the next are
//! measured. One that does not is replaced by the first simpler variant that does
//! (`verify::fallbacks`: without its partial filter, with fewer trailing keys).
//!
//! The scratch database is dropped at the end, also when something fails on the way (and
//! on shutdown, see `mongo::scratch`). Only counts leave this module. A candidate that does
//! not build on the sample is never recommended; one left unmeasured is named in the notes
//! ([`note_unmeasured`]).

use std::collections::BTreeMap;

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use indextap_analyzer::advise::verify::{self, Findings, Measurement};
use indextap_analyzer::advise::{Advice, AdviceSettings, ExistingIndexes, IndexMethod, IndexSpec};
use indextap_analyzer::shape::{Engine, Namespace, Shape, ShapeId};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use super::mongo::{self, number, probe, scratch::Scratch};
use super::Measuring;

/// Sampled documents each served shape is run with.
const PROBES_PER_SHAPE: usize = 3;
/// The heaviest served shapes measured per recommendation.
const SHAPES_PER_RECOMMENDATION: usize = 5;

/// Measures every MongoDB recommendation on a sample; the notes say what could not be.
pub async fn verify_mongo(advice: &mut Advice, measuring: Measuring<'_>) {
    let wanted: Vec<(Namespace, String)> = advice
        .recommendations
        .iter()
        .filter(|r| r.index.namespace.engine == Engine::Mongodb)
        .filter(|r| r.index.method == IndexMethod::Btree)
        .map(|r| (r.index.namespace.clone(), r.name.clone()))
        .collect();
    if wanted.is_empty() {
        return;
    }
    let Some(uri) = &measuring.sources.mongo_uri else {
        return;
    };
    let client = match mongo::client(uri).await {
        Ok(client) => client,
        Err(error) => {
            advice
                .notes
                .push(format!("MongoDB sample verification failed: {error}"));
            return;
        }
    };
    let scratch = Scratch::new(&client);
    let size = measuring.sources.settings.mongo_sample_size;
    let outcome = measure_all(advice, measuring, &scratch, &wanted, size).await;
    if let Err(error) = scratch.drop_now().await {
        tracing::warn!(%error, "the scratch database of sample verification was not dropped");
    }
    advice.notes.extend(outcome.notes);
    outcome
        .found
        .settle(advice, measuring.existing, measuring.settings);
    for recommendation in &mut advice.recommendations {
        if let (Some(evidence), Some(size)) = (
            recommendation.evidence.as_mut(),
            outcome.sampled.get(&recommendation.index.namespace),
        ) {
            evidence.sample_size = Some(*size);
        }
    }
}

/// Names every MongoDB recommendation left without evidence, with why: none is unverified
/// silently. Without `--mongo-verify sample` none is measured; with it, a text index is not,
/// and neither is one whose shapes no sampled document could give values to.
pub fn note_unmeasured(advice: &mut Advice, sampling: bool) {
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for recommendation in &advice.recommendations {
        if recommendation.index.namespace.engine != Engine::Mongodb
            || recommendation.evidence.is_some()
        {
            continue;
        }
        let reason = match (sampling, recommendation.index.method) {
            (false, _) => "MongoDB advice is measured only with --mongo-verify sample",
            (true, IndexMethod::Btree) => {
                "no sampled document gave its shapes values to run them with"
            }
            (true, _) => "only B-tree indexes are measured on the sample",
        };
        by_reason
            .entry(reason)
            .or_default()
            .push(&recommendation.name);
    }
    let notes: Vec<String> = by_reason
        .into_iter()
        .map(|(reason, mut names)| {
            names.sort_unstable();
            format!(
                "{} MongoDB recommendation(s) not verified ({reason}): {}",
                names.len(),
                names.join(", ")
            )
        })
        .collect();
    advice.notes.extend(notes);
}

/// What sample verification found.
#[derive(Default)]
struct Outcome {
    found: Findings,
    /// Documents copied per collection.
    sampled: BTreeMap<Namespace, u64>,
    notes: Vec<String>,
}

async fn measure_all(
    advice: &Advice,
    measuring: Measuring<'_>,
    scratch: &Scratch,
    wanted: &[(Namespace, String)],
    size: u32,
) -> Outcome {
    let Measuring {
        snapshot,
        existing,
        settings,
        ..
    } = measuring;
    let mut outcome = Outcome::default();
    let mut samples: BTreeMap<Namespace, Vec<Document>> = BTreeMap::new();
    for (namespace, name) in wanted {
        if !outcome.sampled.contains_key(namespace) {
            match prepare(scratch, namespace, existing, size).await {
                Ok((copied, documents)) => {
                    outcome.sampled.insert(namespace.clone(), copied);
                    samples.insert(namespace.clone(), documents);
                }
                Err(error) => {
                    outcome
                        .notes
                        .push(format!("{namespace} was not sampled: {error}"));
                    outcome.sampled.insert(namespace.clone(), 0);
                    continue;
                }
            }
        }
        let Some(documents) = samples.get(namespace).filter(|d| !d.is_empty()) else {
            continue;
        };
        let Some(recommendation) = advice
            .recommendations
            .iter()
            .find(|r| &r.index.namespace == namespace && &r.name == name)
        else {
            continue;
        };
        let collection = scratch.collection(namespace);
        let shapes: Vec<_> = recommendation
            .serves
            .iter()
            .take(SHAPES_PER_RECOMMENDATION)
            .filter_map(|served| {
                Some((
                    served.shape_id,
                    &*snapshot.shapes.get(&served.shape_id)?.shape,
                ))
            })
            .collect();
        let mut before = Vec::new();
        for (_, shape) in &shapes {
            before.push(examined(&collection, shape, documents).await);
        }
        let probe = Probe {
            scratch,
            collection: &collection,
            namespace,
            name,
            shapes: &shapes,
            before: &before,
            documents,
        };
        let index = &recommendation.index;
        let first = match probe.measure(index).await {
            Ok(measured) => measured,
            Err(error) => {
                outcome.found.failed.push((
                    namespace.clone(),
                    name.clone(),
                    format!("it does not build on the sample: {error}"),
                ));
                continue;
            }
        };
        if pays(&first, settings) {
            outcome.found.measurements.extend(first);
            continue;
        }
        probe.forget().await;
        if first.is_empty() {
            // Nothing could be run on the sample: the notes say so (`note_unmeasured`).
            continue;
        }
        // Refused, or too small a gain: the simpler variants in turn, as on PostgreSQL.
        let mut chosen = None;
        for simpler in verify::fallbacks(index) {
            if let Ok(measured) = probe.measure(&simpler).await {
                if pays(&measured, settings) {
                    chosen = Some((simpler, measured));
                    break;
                }
                probe.forget().await;
            }
        }
        match chosen {
            Some((simpler, measured)) => {
                outcome
                    .found
                    .replaced
                    .push((namespace.clone(), name.clone(), simpler));
                outcome.found.measurements.extend(measured);
            }
            None => {
                if let Some(heaviest) = first
                    .iter()
                    .max_by(|a, b| a.cost_before.total_cmp(&b.cost_before))
                {
                    outcome.notes.push(format!(
                        "{name}: no simpler index pays either; its heaviest shape keeps examining {:.0} sampled documents",
                        heaviest.cost_before
                    ));
                }
                outcome.found.measurements.extend(first);
            }
        }
    }
    outcome
}

/// Whether measurements show an index that is used and saves `min_gain`.
fn pays(measured: &[Measurement], settings: &AdviceSettings) -> bool {
    let before: f64 = measured.iter().map(|m| m.cost_before).sum();
    let after: f64 = measured.iter().map(|m| m.cost_after).sum();
    let used = measured.iter().any(|m| m.index_used);
    verify::pays(before, after, used, settings.min_gain)
}

/// One recommendation's served shapes on the sample, with what they examined before.
struct Probe<'a> {
    scratch: &'a Scratch,
    collection: &'a Collection<Document>,
    namespace: &'a Namespace,
    name: &'a str,
    shapes: &'a [(ShapeId, &'a Shape)],
    before: &'a [Option<(f64, bool)>],
    documents: &'a [Document],
}

impl Probe<'_> {
    /// Drops the index built under the recommendation's name: one that does not pay is not
    /// kept for the next candidates, which are measured without it.
    async fn forget(&self) {
        let _ = self.collection.drop_index(self.name).await;
    }

    /// Builds `index` under the recommendation's name and measures the shapes with it (it
    /// stays built: [`Probe::forget`] drops it).
    async fn measure(&self, index: &IndexSpec) -> Result<Vec<Measurement>, String> {
        self.scratch
            .write(build(self.collection, index, self.name))
            .await?;
        let mut measured = Vec::new();
        for ((shape_id, shape), cost_before) in self.shapes.iter().zip(self.before) {
            let (Some((docs_before, _)), Some((docs_after, used))) = (
                cost_before,
                examined_with(self.collection, shape, self.documents, self.name).await,
            ) else {
                continue;
            };
            measured.push(Measurement {
                namespace: self.namespace.clone(),
                name: self.name.to_string(),
                shape_id: *shape_id,
                cost_before: *docs_before,
                cost_after: docs_after,
                index_used: used,
            });
        }
        Ok(measured)
    }
}

/// Copies the sample and the collection's existing indexes; returns how many documents
/// were copied and a few of them to take probe values from.
async fn prepare(
    scratch: &Scratch,
    namespace: &Namespace,
    existing: &ExistingIndexes,
    size: u32,
) -> Result<(u64, Vec<Document>), String> {
    let copied = scratch.copy_sample(namespace, size).await?;
    let collection = scratch.collection(namespace);
    for index in existing.get(namespace).into_iter().flatten() {
        let Some(name) = &index.name else {
            continue;
        };
        if index.method != IndexMethod::Btree || name == "_id_" {
            continue;
        }
        // An existing index the sample cannot take (a unique one over duplicates in the
        // sample, say) is left out; the measurement is then pessimistic, never optimistic.
        let _ = scratch.write(build(&collection, index, name)).await;
    }
    let documents: Vec<Document> = collection
        .aggregate(vec![
            doc! { "$sample": { "size": i64::try_from(PROBES_PER_SHAPE).unwrap_or(3) } },
        ])
        .await
        .map_err(|e| {
            format!(
                "sampling probe documents failed: {}",
                mongo::error_label(&e)
            )
        })?
        .try_collect()
        .await
        .map_err(|e| {
            format!(
                "sampling probe documents failed: {}",
                mongo::error_label(&e)
            )
        })?;
    Ok((copied, documents))
}

async fn build(
    collection: &Collection<Document>,
    index: &IndexSpec,
    name: &str,
) -> Result<(), String> {
    let mut keys = Document::new();
    for key in &index.keys {
        keys.insert(
            key.target.column(),
            Bson::Int32(if key.direction < 0 { -1 } else { 1 }),
        );
    }
    // A partial index is measured as it would be built: on the documents it holds.
    let partial = indextap_analyzer::export::partial_filter_expression(index);
    let options = IndexOptions::builder()
        .name(name.to_string())
        .partial_filter_expression(partial)
        .build();
    let model = IndexModel::builder().keys(keys).options(options).build();
    collection
        .create_index(model)
        .await
        .map(drop)
        .map_err(|e| mongo::error_label(&e))
}

/// Documents examined by the shape's probes, summed, with nothing new built.
async fn examined(
    collection: &Collection<Document>,
    shape: &indextap_analyzer::shape::Shape,
    documents: &[Document],
) -> Option<(f64, bool)> {
    examined_with(collection, shape, documents, "").await
}

/// Documents examined by the shape's probes, summed, and whether a winning plan used the
/// index `name`.
async fn examined_with(
    collection: &Collection<Document>,
    shape: &indextap_analyzer::shape::Shape,
    documents: &[Document],
    name: &str,
) -> Option<(f64, bool)> {
    let mut total = 0.0;
    let mut used = false;
    let mut any = false;
    for document in documents {
        let Some(filter) = probe::filter(shape, document) else {
            continue;
        };
        let mut find = doc! { "find": collection.name(), "filter": filter };
        if let Some(sort) = probe::sort(shape) {
            find.insert("sort", sort);
        }
        let explained = collection
            .client()
            .database(&collection.namespace().db)
            .run_command(doc! { "explain": find, "verbosity": "executionStats" })
            .await
            .ok()?;
        let stats = explained.get_document("executionStats").ok()?;
        total += number(stats, "totalDocsExamined");
        any = true;
        if let Ok(plan) = explained
            .get_document("queryPlanner")
            .and_then(|planner| planner.get_document("winningPlan"))
        {
            used |= !name.is_empty() && uses_index(plan, name);
        }
    }
    any.then_some((total, used))
}

fn uses_index(plan: &Document, name: &str) -> bool {
    if plan.get_str("indexName").is_ok_and(|n| n == name) {
        return true;
    }
    if let Ok(input) = plan.get_document("inputStage") {
        if uses_index(input, name) {
            return true;
        }
    }
    plan.get_array("inputStages").is_ok_and(|inputs| {
        inputs
            .iter()
            .filter_map(Bson::as_document)
            .any(|input| uses_index(input, name))
    })
}
