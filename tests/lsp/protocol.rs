//! The real `peftc lsp` binary over JSON-RPC: diagnostics on open and after edits, quick
//! fixes, hover, completion, definition, references, rename, symbols, formatting, shutdown.
use super::client::{pos, project, uri, Client, MAIN};
use serde_json::{json, Value};

fn labels(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap().to_string())
        .collect()
}

fn detail_of(items: &Value, label: &str) -> String {
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["label"] == label)
        .map(|i| i["detail"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn diagnostics_follow_edits_and_quick_fix_applies_did_you_mean() {
    let dir = project();
    let main = dir.path().join("main.peft");
    let mut c = Client::start(dir.path());
    c.open(&main, MAIN);
    let d = c.wait_for("textDocument/publishDiagnostics", |p| p["version"] == 1);
    assert_eq!(d["uri"], uri(&main));
    assert_eq!(d["diagnostics"], json!([]));

    // Introduce a typo with an incremental edit: `alpha` -> `alpah` on line 17.
    let at = pos(MAIN, "alpha   = 16", 0, 0);
    let line = at["line"].as_u64().unwrap();
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri(&main), "version": 2 },
                "contentChanges": [{ "range": { "start": { "line": line, "character": 2 }, "end": { "line": line, "character": 7 } }, "text": "alpah" }] }),
    );
    let d = c.wait_for("textDocument/publishDiagnostics", |p| p["version"] == 2);
    let diags = d["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["code"], "E0103");
    assert_eq!(diags[0]["severity"], 1);
    assert_eq!(
        diags[0]["range"],
        json!({ "start": { "line": line, "character": 2 }, "end": { "line": line, "character": 7 } })
    );
    assert!(diags[0]["message"]
        .as_str()
        .unwrap()
        .contains("did you mean `alpha`?"));

    let actions = c
        .request("textDocument/codeAction", json!({ "textDocument": { "uri": uri(&main) }, "range": diags[0]["range"], "context": { "diagnostics": [diags[0]] } }))
        .unwrap();
    assert_eq!(actions[0]["title"], "Replace with `alpha`");
    assert_eq!(actions[0]["kind"], "quickfix");
    assert_eq!(
        actions[0]["edit"]["changes"][uri(&main)][0]["newText"],
        "alpha"
    );

    // Remove the error again with a full-text change.
    c.notify("textDocument/didChange", json!({ "textDocument": { "uri": uri(&main), "version": 3 }, "contentChanges": [{ "text": MAIN }] }));
    let d = c.wait_for("textDocument/publishDiagnostics", |p| p["version"] == 3);
    assert_eq!(d["diagnostics"], json!([]));
    assert!(c.stop());
}

#[test]
fn hover_shows_docs_figures_and_module_shapes() {
    let dir = project();
    let main = dir.path().join("main.peft");
    let mut c = Client::start(dir.path());
    c.open(&main, MAIN);
    let mut hover = |p: Value| -> String {
        let r = c
            .request(
                "textDocument/hover",
                json!({ "textDocument": { "uri": uri(&main) }, "position": p }),
            )
            .unwrap();
        r["contents"]["value"].as_str().unwrap_or("").to_string()
    };
    // An adapter: header, doc comment, trainable parameters in the train that uses it.
    // q_proj 64->64 and v_proj 64->32 at r = 8 on 2 layers: 2 * 8 * (128 + 96) = 3584.
    let h = hover(pos(MAIN, "[chat]", 0, 1));
    assert!(h.contains("adapter chat = lora_default"), "{h}");
    assert!(h.contains("The adapter under test."), "{h}");
    assert!(
        h.contains("in `tune`: **3.6K trainable parameters** on 4 modules, adapter size 14.0 KiB (f32), memory estimate of the train 33.1 MiB"),
        "{h}"
    );
    // A train: figures and the memory estimate.
    let h = hover(pos(MAIN, "model   = tune", 0, 10));
    assert!(h.contains("train tune"), "{h}");
    assert!(h.contains("trainable parameters: 3.6K"), "{h}");
    assert!(h.contains("memory estimate: **33.1 MiB**"), "{h}");
    // A target: the module's shape in the model.
    let h = hover(pos(MAIN, "v_proj", 0, 2));
    assert!(h.contains("v_proj: Linear(64 -> 32)"), "{h}");
    assert!(h.contains("2 module(s) in `llama`"), "{h}");
    assert!(h.contains("LoRA r = 8: 768 parameters per module"), "{h}");
    // A model: its shape.
    let h = hover(pos(MAIN, "model    = tiny", 0, 11));
    assert!(
        h.contains("The tiny llama.") && h.contains("llama: hidden 64"),
        "{h}"
    );
    // A field key: its type.
    let h = hover(pos(MAIN, "epochs", 0, 1));
    assert!(h.contains("epochs: int"), "{h}");
    assert!(c.stop());
}

#[test]
fn completion_depends_on_the_cursor() {
    let dir = project();
    let main = dir.path().join("main.peft");
    let other = dir.path().join("other.peft");
    let mut c = Client::start(dir.path());
    c.open(&main, MAIN);
    let text2 = "use std.recipes.{q}\nuse std.\n";
    c.open(&other, text2);
    let mut complete = |file: &std::path::PathBuf, p: Value| -> Value {
        c.request(
            "textDocument/completion",
            json!({ "textDocument": { "uri": uri(file) }, "position": p }),
        )
        .unwrap()
    };
    // A new entry in the adapter body: LoRA's fields with their types.
    let items = complete(&main, pos(MAIN, "r       = 8", 0, 0));
    let l = labels(&items);
    assert!(
        l.contains(&"dropout".to_string())
            && l.contains(&"targets".to_string())
            && l.contains(&"rslora".to_string()),
        "{l:?}"
    );
    assert!(!l.contains(&"epochs".to_string()));
    assert_eq!(detail_of(&items, "targets"), "[module, ..] | all_linear");
    // Inside `targets = [..]`: the model's real modules with their shapes.
    let items = complete(&main, pos(MAIN, "q_proj", 0, 0));
    let l = labels(&items);
    for m in [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
        "all_linear",
    ] {
        assert!(l.contains(&m.to_string()), "{m} missing in {l:?}");
    }
    assert_eq!(detail_of(&items, "k_proj"), "Linear(64 -> 32)");
    assert_eq!(detail_of(&items, "down_proj"), "Linear(128 -> 64)");
    // After `gate`: the eval's metrics and `baseline`.
    let l = labels(&complete(&main, pos(MAIN, "loss < baseline", 0, 0)));
    assert_eq!(l, vec!["loss".to_string(), "baseline".to_string()]);
    // Where a model is expected: the model declaration, not the dataset.
    let l = labels(&complete(&main, pos(MAIN, "tiny\n  adapters", 0, 0)));
    assert!(
        l.contains(&"tiny".to_string()) && !l.contains(&"qa".to_string()),
        "{l:?}"
    );
    // A named option.
    let l = labels(&complete(&main, pos(MAIN, "alpaca", 0, 0)));
    assert!(l.contains(&"chatml".to_string()), "{l:?}");
    // Top level: the declaration keywords.
    let l = labels(&complete(&main, json!({ "line": 2, "character": 0 })));
    assert!(
        l.contains(&"adapter".to_string())
            && l.contains(&"train".to_string())
            && l.contains(&"use".to_string()),
        "{l:?}"
    );
    // After `use std.`: the stdlib modules; inside `.{..}`: the module's names.
    let l = labels(&complete(&other, json!({ "line": 1, "character": 8 })));
    assert_eq!(
        l,
        vec![
            "recipes".to_string(),
            "templates".to_string(),
            "models".to_string()
        ]
    );
    let l = labels(&complete(&other, json!({ "line": 0, "character": 17 })));
    assert!(
        l.contains(&"qlora".to_string()) && l.contains(&"lora_default".to_string()),
        "{l:?}"
    );
    assert!(c.stop());
}

#[test]
fn definition_references_rename_and_symbols() {
    let dir = project();
    let main = dir.path().join("main.peft");
    let mut c = Client::start(dir.path());
    c.open(&main, MAIN);
    let td = json!({ "uri": uri(&main) });
    // Same file.
    let d = c
        .request(
            "textDocument/definition",
            json!({ "textDocument": td, "position": pos(MAIN, "[chat]", 0, 2) }),
        )
        .unwrap();
    assert_eq!(d["uri"], uri(&main));
    assert_eq!(
        d["range"],
        json!({ "start": pos(MAIN, "chat = lora", 0, 0), "end": pos(MAIN, "chat = lora", 0, 4) })
    );
    // Into the stdlib: a readable copy of `std.recipes`.
    let d = c
        .request(
            "textDocument/definition",
            json!({ "textDocument": td, "position": pos(MAIN, "= lora_default", 0, 4) }),
        )
        .unwrap();
    let target = d["uri"]
        .as_str()
        .unwrap()
        .strip_prefix("file://")
        .unwrap()
        .to_string();
    assert!(target.ends_with("recipes.peft"), "{target}");
    let recipes = std::fs::read_to_string(&target).unwrap();
    let line = d["range"]["start"]["line"].as_u64().unwrap() as usize;
    assert!(recipes
        .lines()
        .nth(line)
        .unwrap()
        .starts_with("adapter lora_default"));
    // References of `qa`: the declaration, `qa.train`, `qa.eval`.
    let refs = c
        .request("textDocument/references", json!({ "textDocument": td, "position": pos(MAIN, "qa.train", 0, 0), "context": { "includeDeclaration": true } }))
        .unwrap();
    let lines: Vec<u64> = refs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![7, 24, 31]);
    // Rename `tiny` to `base` in both places.
    let edit = c
        .request(
            "textDocument/rename",
            json!({ "textDocument": td, "position": pos(MAIN, "tiny =", 0, 1), "newName": "base" }),
        )
        .unwrap();
    let edits = edit["changes"][uri(&main)].as_array().unwrap();
    assert_eq!(edits.len(), 2);
    assert!(edits.iter().all(|e| e["newText"] == "base"));
    let err = c.request("textDocument/rename", json!({ "textDocument": td, "position": pos(MAIN, "tiny =", 0, 1), "newName": "train" })).unwrap_err();
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("not a valid name"));
    // The outline.
    let syms = c
        .request("textDocument/documentSymbol", json!({ "textDocument": td }))
        .unwrap();
    let names: Vec<&str> = syms
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["tiny", "qa", "chat", "tune", "answers"]);
    let chat = &syms[2];
    let fields: Vec<&str> = chat["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["r", "alpha", "targets"]);
    assert!(c.stop());
}

#[test]
fn formatting_returns_the_canonical_text() {
    let dir = project();
    let messy = dir.path().join("messy.peft");
    let broken = dir.path().join("broken.peft");
    let mut c = Client::start(dir.path());
    let src = "// keep me\nadapter a=lora{r=8,alpha=16 // scale\n  targets=[q_proj,v_proj]}\n\n\n\nmodel m = hf(\"x\")";
    c.open(&messy, src);
    c.open(&broken, "adapter a = lora { r = }\n");
    let opts = json!({ "tabSize": 2, "insertSpaces": true });
    let edits = c
        .request(
            "textDocument/formatting",
            json!({ "textDocument": { "uri": uri(&messy) }, "options": opts }),
        )
        .unwrap();
    let edits = edits.as_array().unwrap();
    assert_eq!(edits.len(), 1);
    assert_eq!(
        edits[0]["range"],
        json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 6, "character": 17 } })
    );
    assert_eq!(
        edits[0]["newText"],
        "// keep me\nadapter a = lora {\n  r       = 8\n  alpha   = 16 // scale\n  targets = [q_proj, v_proj]\n}\n\nmodel m = hf(\"x\")\n"
    );
    let none = c
        .request(
            "textDocument/formatting",
            json!({ "textDocument": { "uri": uri(&broken) }, "options": opts }),
        )
        .unwrap();
    assert_eq!(none, json!([]));
    assert!(c.stop());
}

#[test]
fn definition_and_hover_reach_used_files_and_see_unsaved_buffers() {
    let dir = project();
    let lib = dir.path().join("lib.peft");
    let app = dir.path().join("app.peft");
    std::fs::write(
        &lib,
        "/// Shared recipe.\nadapter shared = lora {\n  r = 4\n}\n",
    )
    .unwrap();
    let app_text = "use \"lib.peft\"\n\nadapter mine = shared {\n  alpha = 8\n}\n";
    std::fs::write(&app, app_text).unwrap();
    let mut c = Client::start(dir.path());
    c.open(&app, app_text);
    let d = c.wait_for("textDocument/publishDiagnostics", |p| p["uri"] == uri(&app));
    let codes: Vec<&str> = d["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert!(!codes.iter().any(|c| c.starts_with('E')), "{d}");
    let at = pos(app_text, "shared {", 0, 2);
    let def = c
        .request(
            "textDocument/definition",
            json!({ "textDocument": { "uri": uri(&app) }, "position": at }),
        )
        .unwrap();
    assert_eq!(def["uri"], uri(&lib));
    assert_eq!(def["range"]["start"], json!({ "line": 1, "character": 8 }));
    let h = c
        .request(
            "textDocument/hover",
            json!({ "textDocument": { "uri": uri(&app) }, "position": at }),
        )
        .unwrap();
    assert!(h["contents"]["value"]
        .as_str()
        .unwrap()
        .contains("Shared recipe."));
    // An unsaved edit of lib.peft (renaming the adapter) is what app.peft is checked against.
    c.open(&lib, "adapter renamed = lora {\n  r = 4\n}\n");
    c.notify("textDocument/didChange", json!({ "textDocument": { "uri": uri(&app), "version": 2 }, "contentChanges": [{ "text": app_text }] }));
    let d = c.wait_for("textDocument/publishDiagnostics", |p| {
        p["uri"] == uri(&app) && p["version"] == 2
    });
    let errors: Vec<&Value> = d["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == 1)
        .collect();
    assert_eq!(errors.len(), 1, "{d}");
    assert_eq!(
        errors[0]["range"]["start"],
        json!({ "line": 2, "character": 15 })
    );
    assert!(
        errors[0]["message"].as_str().unwrap().contains("shared"),
        "{d}"
    );
    assert!(c.stop());
}

#[test]
fn exit_without_shutdown_is_an_error_exit() {
    let dir = project();
    let c = Client::start(dir.path());
    assert_eq!(c.exit_without_shutdown(), Some(1));
}

#[test]
fn references_and_rename_span_used_files_and_an_edit_of_a_used_file_rechecks_its_users() {
    let dir = project();
    let lib = dir.path().join("lib.peft");
    let app = dir.path().join("app.peft");
    let other = dir.path().join("other.peft");
    let lib_text = "/// Shared recipe.\nadapter shared = lora {\n  r = 4\n}\n";
    let app_text = "use \"lib.peft\"\n\nadapter mine = shared {\n  alpha = 8\n}\n";
    // A second user of lib.peft, open too, with its own `mine` (a different declaration).
    let other_text =
        "use \"lib.peft\"\n\nadapter mine = lora {\n  r = 2\n}\nadapter again = shared\n";
    std::fs::write(&lib, lib_text).unwrap();
    std::fs::write(&app, app_text).unwrap();
    std::fs::write(&other, other_text).unwrap();
    let mut c = Client::start(dir.path());
    c.open(&app, app_text);
    c.open(&other, other_text);
    c.wait_for("textDocument/publishDiagnostics", |p| {
        p["uri"] == uri(&other)
    });

    // From a use in app.peft: the declaration in lib.peft, the use in app.peft and the use in
    // other.peft (which sees the same declaration through its own `use`).
    let refs = c
        .request("textDocument/references", json!({ "textDocument": { "uri": uri(&app) }, "position": pos(app_text, "shared {", 0, 1), "context": { "includeDeclaration": true } }))
        .unwrap();
    let mut found: Vec<(String, u64, u64)> = refs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["uri"].as_str().unwrap().to_string(),
                r["range"]["start"]["line"].as_u64().unwrap(),
                r["range"]["start"]["character"].as_u64().unwrap(),
            )
        })
        .collect();
    found.sort();
    let mut want = vec![(uri(&app), 2, 15), (uri(&lib), 1, 8), (uri(&other), 5, 16)];
    want.sort();
    assert_eq!(found, want);

    // `mine` in app.peft is not `mine` in other.peft.
    let refs = c
        .request("textDocument/references", json!({ "textDocument": { "uri": uri(&app) }, "position": pos(app_text, "mine", 0, 1), "context": { "includeDeclaration": true } }))
        .unwrap();
    assert_eq!(refs.as_array().unwrap().len(), 1, "{refs}");

    // Rename edits all three files.
    let edit = c
        .request("textDocument/rename", json!({ "textDocument": { "uri": uri(&app) }, "position": pos(app_text, "shared {", 0, 1), "newName": "common" }))
        .unwrap();
    let changes = edit["changes"].as_object().unwrap();
    let mut files: Vec<&String> = changes.keys().collect();
    files.sort();
    let mut want_files = [uri(&app), uri(&lib), uri(&other)];
    want_files.sort();
    assert_eq!(files, want_files.iter().collect::<Vec<_>>());
    assert!(changes
        .values()
        .all(|e| e.as_array().unwrap().len() == 1 && e[0]["newText"] == "common"));

    // A stdlib declaration is not renamed.
    let std_text = "use std.recipes.{lora_default}\n\nadapter x = lora_default\n";
    let std_user = dir.path().join("std_user.peft");
    c.open(&std_user, std_text);
    let err = c
        .request("textDocument/rename", json!({ "textDocument": { "uri": uri(&std_user) }, "position": pos(std_text, "= lora_default", 0, 4), "newName": "mine2" }))
        .unwrap_err();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("standard library"),
        "{err}"
    );

    // Opening lib.peft with the adapter renamed re-checks both users without an edit of theirs.
    c.open(&lib, "adapter renamed = lora {\n  r = 4\n}\n");
    for user in [&app, &other] {
        let d = c.wait_for("textDocument/publishDiagnostics", |p| {
            p["uri"] == uri(user)
                && p["diagnostics"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|d| d["severity"] == 1))
        });
        let error = d["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["severity"] == 1)
            .unwrap();
        assert!(error["message"].as_str().unwrap().contains("shared"), "{d}");
    }
    assert!(c.stop());
}
