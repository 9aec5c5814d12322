//! The real `openai` Python client (pinned; installed by scripts/install-openai.sh into
//! target/openai-venv, or the interpreter in $PEFTC_OPENAI_PYTHON) against the `peftc serve`
//! binary: models, completions and chat, streaming and not, each equal to the
//! transformers + PEFT greedy tokens; then SIGTERM stops the server cleanly. Prints skipped
//! when no interpreter with `openai` is found.

use super::support::{adapter_dir, llama_dir, Reference};
use peftc::runtime::data::tokenizer::ModelTokenizer;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("PEFTC_OPENAI_PYTHON").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/openai-venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import openai"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn the_openai_client_gets_each_adapters_own_greedy_text() {
    let Some(py) = python() else {
        println!("skipped: no Python with the `openai` package (run scripts/install-openai.sh)");
        return;
    };
    let r = Reference::load();
    let mut child = Command::new(env!("CARGO_BIN_EXE_peftc"))
        .arg("serve")
        .arg("--model")
        .arg(llama_dir().join("model"))
        .args(["--name", "base", "--port", "0"])
        .arg("--adapter")
        .arg(format!("qv={}", adapter_dir("qv").display()))
        .arg("--adapter")
        .arg(format!("all={}", adapter_dir("all").display()))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("peftc serve exited: {:?}", child.wait());
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let prompt = &r.prompts[0].0;
    let out = Command::new(&py)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/serve/openai_client.py"))
        .arg(format!("http://{addr}/v1"))
        .arg(prompt)
        .arg(r.max_new_tokens.to_string())
        .args(["base", "qv", "all"])
        .output()
        .unwrap();
    // SIGTERM: the server finishes and exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(status.success(), "peftc serve after SIGTERM: {status}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["models"], serde_json::json!(["base", "qv", "all"]));
    assert_eq!(v["missing"], 404);
    let tok = ModelTokenizer::from_dir(&llama_dir().join("model")).unwrap();
    for model in ["base", "qv", "all"] {
        let res = &v["results"][model];
        let want = r.output(model, 0);
        let text = tok.tokenizer().decode(&want, true).unwrap();
        assert_eq!(res["completion"], text.as_str(), "{model}");
        assert_eq!(res["completion_stream"], text.as_str(), "{model}");
        assert_eq!(res["completion_tokens"], want.len());
        let finish = if want.last() == Some(&1) {
            "stop"
        } else {
            "length"
        };
        assert_eq!(res["completion_finish"], finish);
        assert_eq!(res["chat_role"], "assistant");
        assert_eq!(res["chat"], res["chat_stream"], "{model}");
    }
    // Different adapters, different text: the client saw the adapter it asked for.
    assert_ne!(v["results"]["qv"]["chat"], v["results"]["all"]["chat"]);
}
