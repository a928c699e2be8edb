//! The committed reference runs (`results/*/runs/*.json`) against the model:
//! every one still matches `schema.json` and reads as a typed report.

use std::path::Path;

use runs::{read_runs, schema};

/// Every committed reference run still reads as a report with typed labels,
/// and still matches the schema: the labels contract and the fields added
/// since (issue 11's `targets`, `loadgen_usage`, `affinity`, all optional when
/// read) did not change what the JSON that results/ holds means.
#[test]
fn committed_reference_runs_still_load() {
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results");
    let schema = schema::schema();
    let mut read = 0;
    for entry in std::fs::read_dir(&results).expect("results/ is committed") {
        let dir = entry.expect("an entry of results/").path();
        if !dir.join("runs").is_dir() {
            continue;
        }
        for run in std::fs::read_dir(dir.join("runs")).expect("runs/ reads") {
            let path = run.expect("an entry of runs/").path();
            if path.extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a run reads");
            let json: serde_json::Value = serde_json::from_str(&text).expect("a run is JSON");
            if let Err(err) = schema::validate(&schema, &json) {
                panic!("{} no longer matches the schema: {err}", path.display());
            }
        }
        let runs = read_runs(&dir).unwrap_or_else(|err| panic!("{}: {err:#}", dir.display()));
        assert!(
            runs.iter()
                .all(|run| run.labels.section.is_some() && run.labels.mode.is_some()),
            "{}: a run without its section or mode",
            dir.display()
        );
        read += runs.len();
    }
    assert!(read > 0, "no reference runs under {}", results.display());
}
