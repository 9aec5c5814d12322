//! Computes a [`PlanStatus`] without running anything: for each stage, in order, its key from
//! the inputs' cached output digests and its files' hashes, whether a verified cache entry
//! exists, and — against the previous lockfile — why it would run.

use super::cache::{Cache, Lookup};
use super::error::Result;
use super::lockfile::Lockfile;
use super::scheduler::{forced, resolve, selection};
use crate::plan::{Digest, Plan, PlanStatus, Reason, StageId, StageKey, StageState, StageStatus};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What `peftc plan` needs besides the plan and the cache.
#[derive(Clone, Debug, Default)]
pub struct StatusConfig<'a> {
    /// Folder that relative file inputs resolve against.
    pub root: PathBuf,
    /// `--only` ids (empty: all).
    pub only: Vec<String>,
    /// `--force` ids.
    pub force: Vec<String>,
    /// The previous `peftc.lock`, to name reasons.
    pub previous: Option<&'a Lockfile>,
}

/// The status of every stage of `plan`, in topological order.
pub fn plan_status(plan: &Plan, cache: &Cache, config: &StatusConfig<'_>) -> Result<PlanStatus> {
    let selected = selection(plan, &config.only)?;
    let forced = forced(plan, &config.force)?;
    // Per stage: Some(output digest) when cached, None when it will (or may) run.
    let mut outputs: BTreeMap<usize, Option<Digest>> = BTreeMap::new();
    let mut stages = Vec::new();
    for &i in plan.order() {
        let Some(stage) = plan.stages().get(i) else {
            continue;
        };
        if !selected.contains(&i) {
            stages.push(StageStatus {
                id: stage.id.clone(),
                state: StageState::NotSelected,
                reasons: vec![],
                key: None,
            });
            continue;
        }
        let mut pending = Vec::new();
        let mut input_digests = BTreeMap::new();
        for (slot, from) in &stage.inputs {
            match plan
                .index_of(from)
                .and_then(|j| outputs.get(&j))
                .cloned()
                .flatten()
            {
                Some(d) => {
                    input_digests.insert(slot.clone(), d);
                }
                None => pending.push(Reason::InputPending {
                    slot: slot.clone(),
                    stage: from.clone(),
                }),
            }
        }
        let is_forced = forced.contains(&i);
        let mut file_digests = BTreeMap::new();
        for (slot, path) in &stage.files {
            file_digests.insert(
                slot.clone(),
                cache.hasher().hash(&resolve(&config.root, path))?,
            );
        }
        let prev = config
            .previous
            .and_then(|l| l.stages.get(stage.id.as_str()));
        if !pending.is_empty() {
            // The key is unknown until the inputs are rebuilt; a change of the stage's own
            // config, kind or files already decides that it runs.
            let own = prev.map(|p| {
                let partial =
                    StageKey::new(stage, p.stage_key.inputs.clone(), file_digests.clone());
                Reason::from_key_diff(
                    &p.stage_key,
                    &partial,
                    |s| StageId::from(s),
                    |slot| stage.files.get(slot).cloned().unwrap_or_default(),
                )
            });
            let (state, reasons) = match own {
                _ if is_forced => (StageState::ToRun, vec![Reason::Forced]),
                Some(own) if !own.is_empty() => {
                    (StageState::ToRun, own.into_iter().chain(pending).collect())
                }
                _ => (StageState::Waiting, pending),
            };
            outputs.insert(i, None);
            stages.push(StageStatus {
                id: stage.id.clone(),
                state,
                reasons,
                key: None,
            });
            continue;
        }
        let sk = StageKey::new(stage, input_digests, file_digests);
        let key = sk.digest();
        let lookup = cache.lookup(&key)?;
        let (state, reasons, output) = match (&lookup, is_forced) {
            (_, true) => (StageState::ToRun, vec![Reason::Forced], None),
            (Lookup::Hit(e), false) => (
                StageState::Cached,
                vec![],
                Some(e.manifest.output_digest.clone()),
            ),
            (Lookup::Corrupt(detail), false) => (
                StageState::ToRun,
                vec![Reason::CorruptEntry {
                    detail: detail.clone(),
                }],
                None,
            ),
            (Lookup::Miss, false) => {
                let reasons = match prev {
                    None => vec![Reason::New],
                    Some(p) if p.key == key => vec![Reason::NotInCache],
                    Some(p) => {
                        let r = Reason::from_key_diff(
                            &p.stage_key,
                            &sk,
                            |slot| {
                                stage
                                    .inputs
                                    .get(slot)
                                    .cloned()
                                    .unwrap_or_else(|| StageId::from(slot))
                            },
                            |slot| stage.files.get(slot).cloned().unwrap_or_default(),
                        );
                        if r.is_empty() {
                            vec![Reason::NotInCache]
                        } else {
                            r
                        }
                    }
                };
                (StageState::ToRun, reasons, None)
            }
        };
        outputs.insert(i, output);
        stages.push(StageStatus {
            id: stage.id.clone(),
            state,
            reasons,
            key: Some(key),
        });
    }
    cache.save_stat_cache()?;
    Ok(PlanStatus { stages })
}
