//! `casher cache show KEY [--json]`

use std::process::ExitCode;

use anyhow::Result;
use casher_store::{Bytes, Input, Output, Store, Stream};

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The entry's key, or a unique prefix of it.
    key: String,

    /// Print JSON: {key, variants: [{inputs, outputs, exit_code, created}]}.
    #[arg(long)]
    json: bool,
}

fn input_json(input: &Input) -> serde_json::Value {
    match input {
        Input::File { path, hash, .. } => {
            serde_json::json!({"path": path.display(), "kind": "file", "hash": hash.hex()})
        }
        Input::Absent { path } | Input::NoEntry { path } => {
            serde_json::json!({"path": path.display(), "kind": "absent", "hash": null})
        }
        Input::Dir { path, hash } => {
            serde_json::json!({"path": path.display(), "kind": "dir", "hash": hash.hex()})
        }
        Input::Code { name, path, hash } => serde_json::json!({
            "path": path.as_ref().map_or_else(|| name.clone(), |p| p.display()),
            "name": name, "kind": "code", "hash": hash,
        }),
        Input::Meta { path, follow, meta } => serde_json::json!({
            "path": path.display(), "kind": "stat", "hash": null, "follow": follow,
            "meta": format!("{meta:?}"),
        }),
        Input::Link { path, target } => serde_json::json!({
            "path": path.display(), "kind": "link", "hash": null,
            "target": target.as_ref().map(|t| t.display()),
        }),
        Input::Fails { path, errno } => serde_json::json!({
            "path": path.display(), "kind": "fails", "hash": null, "errno": errno,
        }),
        Input::Replaceable { path, mode } => serde_json::json!({
            "path": path.display(), "kind": "replaceable", "hash": null, "mode": mode,
        }),
        Input::Context { name, digest } => serde_json::json!({
            "path": name, "name": name, "kind": "context", "hash": digest.hex(),
        }),
    }
}

fn output_json(output: &Output) -> serde_json::Value {
    match output {
        Output::File {
            path,
            hash,
            size,
            mode,
        } => serde_json::json!({
            "path": path.display(), "kind": "file", "hash": hash.hex(), "size": size, "mode": mode,
        }),
        Output::Deleted { path } => {
            serde_json::json!({"path": path.display(), "kind": "deleted", "hash": null})
        }
        Output::Dir { path, mode } => {
            serde_json::json!({"path": path.display(), "kind": "dir", "hash": null, "mode": mode})
        }
        Output::Symlink { path, target } => serde_json::json!({
            "path": path.display(), "kind": "symlink", "hash": null, "target": target.display(),
        }),
    }
}

pub fn run(store: &Store, args: &ShowArgs) -> Result<ExitCode> {
    let (key, variants) = store.show(&args.key)?;
    if args.json {
        let value = serde_json::json!({
            "key": key,
            "variants": variants.iter().map(|v| serde_json::json!({
                "description": v.variant.description,
                "inputs": v.variant.inputs.iter().map(input_json).collect::<Vec<_>>(),
                "shared_inputs": v.variant.shared.map(|s| serde_json::json!({
                    "count": s.len,
                    "object": s.object.map(|o| o.hex()),
                })),
                "outputs": v.variant.outputs.iter().map(output_json).collect::<Vec<_>>(),
                "exit_code": v.variant.exit_code,
                "created": v.variant.created_ns / 1_000_000_000,
            })).collect::<Vec<_>>(),
        });
        crate::output::print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines = vec![format!("key {key}: {} variant(s)", variants.len())];
    for (i, v) in variants.iter().enumerate() {
        let stdio: usize = v
            .variant
            .stdio
            .iter()
            .map(|c| match &c.bytes {
                Bytes::Inline(b) => b.len(),
                Bytes::Object { size, .. } => *size as usize,
            })
            .sum();
        let stderr_chunks = v
            .variant
            .stdio
            .iter()
            .filter(|c| c.stream == Stream::Stderr)
            .count();
        lines.push(format!(
            "variant {i}: {} (exit {}, {stdio} bytes of output, {stderr_chunks} stderr chunk(s))",
            v.variant.description, v.variant.exit_code
        ));
        lines.push("  inputs:".to_owned());
        if let Some(shared) = v.variant.shared {
            // A fork server's import-time inputs, stored once for its calls.
            lines.push(format!(
                "    (the first {} are shared with other records: object {})",
                shared.len,
                shared
                    .object
                    .map_or_else(|| "?".to_owned(), |o| o.hex()[..16].to_owned())
            ));
        }
        for input in &v.variant.inputs {
            let j = input_json(input);
            lines.push(format!(
                "    {:<6} {} {}",
                j["kind"].as_str().unwrap_or(""),
                j["path"].as_str().unwrap_or(""),
                short(&j["hash"])
            ));
        }
        lines.push("  outputs:".to_owned());
        for output in &v.variant.outputs {
            let j = output_json(output);
            // A symlink has no content hash: show where it points.
            let detail = match output {
                Output::Symlink { target, .. } => format!("-> {}", target.display()),
                _ => short(&j["hash"]),
            };
            lines.push(format!(
                "    {:<7} {} {detail}",
                j["kind"].as_str().unwrap_or(""),
                j["path"].as_str().unwrap_or(""),
            ));
        }
    }
    crate::output::print_lines(&lines)?;
    Ok(ExitCode::SUCCESS)
}

fn short(hash: &serde_json::Value) -> String {
    hash.as_str()
        .map(|h| h.chars().take(12).collect())
        .unwrap_or_default()
}
