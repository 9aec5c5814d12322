//! Snapshots of `peftc plan` renderings (text, JSON, dot) after a run and a few changes: a
//! config field, a file, and a forced stage. Inputs are fixed, so keys are stable.

use super::support::{standard_plan, Fixture};
use peftc::exec::{plan_status, Lockfile, StatusConfig};
use peftc::plan::render;

fn changed_status(force: &[&str]) -> (peftc::plan::Plan, peftc::plan::PlanStatus) {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    fx.write_lock(&plan, &fx.run(&plan));
    fx.write("c.txt", "gamma, edited");
    let plan = standard_plan("*", "");
    let prev = Lockfile::read(&fx.lock_path()).expect("lock");
    let config = StatusConfig {
        root: fx.root().to_path_buf(),
        previous: prev.as_ref(),
        force: force.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    let status = plan_status(&plan, &fx.cache(), &config).expect("status");
    (plan, status)
}

#[test]
fn plan_text() {
    let (plan, status) = changed_status(&["src_b"]);
    insta::assert_snapshot!(render::text(&plan, &status));
}

#[test]
fn plan_json() {
    let (plan, status) = changed_status(&[]);
    insta::assert_snapshot!(render::json(&plan, &status));
}

#[test]
fn plan_dot() {
    let (plan, status) = changed_status(&[]);
    insta::assert_snapshot!(render::dot(&plan, &status));
}

#[test]
fn a_fresh_plan_says_new() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let config = StatusConfig {
        root: fx.root().to_path_buf(),
        ..Default::default()
    };
    let status = plan_status(&plan, &fx.cache(), &config).expect("status");
    insta::assert_snapshot!(render::text(&plan, &status));
}
