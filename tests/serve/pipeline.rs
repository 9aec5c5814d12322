//! `peftc serve FILE` end to end: a tiny llama pipeline with two trains is run by the real
//! `peftc run` (two LoRA adapters exported as PEFT folders), then served; `/v1/models` lists
//! the base and `train.adapter` for each export, and each adapter's greedy answer equals
//! peftc's own generation with that exported folder loaded alone. Before the run, serving
//! refuses with the command that writes the exports.

use super::support::{get, ids, llama_dir, post};
use candle_core::Device;
use peftc::runtime::models::generate::{generate, GenerateConfig, Sampling};
use peftc::runtime::models::load::{load_folder, LoadConfig};
use peftc::runtime::peft_format::load::load_adapter;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const PIPELINE: &str = r#"model tiny = local("model")

dataset notes = jsonl("data.jsonl") {
  text    = field("text")
  max_len = 24
  split   = { train = 80%, eval = 20%, seed = 1 }
}

adapter a = lora { r = 4, alpha = 8, targets = [q_proj, v_proj] }
adapter b = lora { r = 4, alpha = 8, targets = [q_proj, k_proj, v_proj, o_proj] }

train t {
  model     = tiny
  adapters  = [a]
  data      = notes.train
  epochs    = 1
  max_steps = 2
  batch     = 4
  lr        = 2e-2
  seed      = 1
}

train u {
  model     = tiny
  adapters  = [b]
  data      = notes.train
  epochs    = 1
  max_steps = 2
  batch     = 4
  lr        = 2e-2
  seed      = 2
}

export t.a to "out/a" as peft
export u.b to "out/b" as peft
"#;

fn peftc(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_peftc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("PEFTC_CACHE_DIR")
        .output()
        .unwrap()
}

#[test]
fn serve_file_serves_the_pipelines_base_and_exported_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(llama_dir().join("model").join(f), model.join(f)).unwrap();
    }
    let rows: String = (0..20)
        .map(|i| {
            json!({"text": format!("the cat sat on the mat {}", ["and the dog", "hello world", "low rank"][i % 3])})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(dir.path().join("data.jsonl"), rows).unwrap();
    std::fs::write(dir.path().join("pipeline.peft"), PIPELINE).unwrap();

    let early = peftc(&["serve", "pipeline.peft", "--port", "0"], dir.path());
    assert_eq!(early.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&early.stderr);
    assert!(
        stderr.contains("does not exist yet: run `peftc run"),
        "{stderr}"
    );

    let run = peftc(&["run", "pipeline.peft"], dir.path());
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_peftc"))
        .args(["serve", "pipeline.peft", "--port", "0"])
        .current_dir(dir.path())
        .env_remove("PEFTC_CACHE_DIR")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr: std::net::SocketAddr = loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("peftc serve exited: {:?}", child.wait());
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let names: Vec<String> = get(addr, "/v1/models").json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["tiny", "t.a", "u.b"]);
    let prompt = "the cat sat on";
    let mut answers = Vec::new();
    for (name, folder) in [
        ("tiny", None),
        ("t.a", Some("out/a")),
        ("u.b", Some("out/b")),
    ] {
        let reply = post(
            addr,
            "/v1/completions",
            &json!({"model": name, "prompt": prompt, "max_tokens": 10, "temperature": 0,
                    "return_token_ids": true, "ignore_eos": true}),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let got = ids(&reply.json()["choices"][0]["token_ids"]);
        // The same folder loaded alone into a fresh model.
        let mut m = load_folder(&model, &LoadConfig::default()).unwrap();
        if let Some(f) = folder {
            load_adapter(m.as_adaptable_mut(), &dir.path().join(f), "x").unwrap();
        }
        let tok = peftc::runtime::data::tokenizer::ModelTokenizer::from_dir(&model).unwrap();
        let p = tok
            .tokenizer()
            .encode(prompt, true)
            .unwrap()
            .get_ids()
            .to_vec();
        let want = generate(
            m.decoder().unwrap(),
            &[p],
            &GenerateConfig {
                max_new_tokens: 10,
                sampling: Sampling::Greedy,
                eos_token_ids: vec![],
                pad_token_id: 2,
            },
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(got, want[0], "{name}");
        answers.push(got);
    }
    assert_ne!(
        answers[1], answers[2],
        "the two trained adapters answer alike"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}
