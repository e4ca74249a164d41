//! `casher deps FILE [--function NAME] [--python PATH] [--json]`

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use casher_analyzer::{analyze, AnalyzeOptions, AnalyzerError, DepsReport, ModuleReport};

#[derive(Debug, clap::Args)]
pub struct DepsArgs {
    /// The Python file to analyze.
    file: PathBuf,

    /// A top-level function (or class) of FILE whose cache key to show.
    #[arg(long)]
    function: Option<String>,

    /// The interpreter whose import rules and installed packages apply
    /// (default: the virtual environment's when this casher is installed
    /// in one, else python3 on PATH).
    #[arg(long)]
    python: Option<PathBuf>,

    /// A directory searched before the interpreter's sys.path (repeatable),
    /// like an entry of PYTHONPATH.
    #[arg(long = "path", value_name = "DIR")]
    paths: Vec<PathBuf>,

    /// Where casher keeps its caches (default: CASHER_DIR, pyproject.toml, ~/.cache/casher).
    #[arg(long)]
    cache_dir: Option<PathBuf>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Exit code when a dependency could not be analyzed: the digest cannot be trusted.
const EXIT_DEPENDENCY_ERROR: u8 = 1;

pub fn run(args: &DepsArgs) -> Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let cache_dir = match casher_store::cache_dir(args.cache_dir.as_deref(), &cwd) {
        Ok((dir, _)) => match casher_store::ensure_cache_dir(&dir) {
            Ok(()) => Some(dir),
            Err(err) => {
                tracing::warn!("{err}; continuing without the persistent index");
                None
            }
        },
        Err(err) => {
            tracing::warn!("{err}; continuing without the persistent index");
            None
        }
    };
    let options = AnalyzeOptions {
        python: args.python.clone().unwrap_or_else(default_python),
        cache_dir,
        function: args.function.clone(),
        extra_paths: args.paths.clone(),
    };
    let report = analyze(&args.file, &options).map_err(|err| match err {
        AnalyzerError::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
            anyhow::anyhow!("{} does not exist", path.display())
        }
        other => anyhow::Error::new(other),
    })?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).context("cannot write to stdout")?;
        writeln!(out).ok();
    } else {
        print_tree(&mut out, &report).context("cannot write to stdout")?;
    }
    out.flush().context("cannot write to stdout")?;
    drop(out);
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if report.errors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    eprintln!(
        "error: {} dependenc{} could not be analyzed; the code digest cannot be trusted",
        report.errors.len(),
        if report.errors.len() == 1 { "y" } else { "ies" }
    );
    Ok(ExitCode::from(EXIT_DEPENDENCY_ERROR))
}

/// The interpreter of the virtual environment this `casher` is installed
/// in (`.venv/bin/casher deps` then sees that venv's packages, like
/// `.venv/bin/python` would), else `python3` on PATH.
fn default_python() -> PathBuf {
    let venv_python = std::env::current_exe().ok().and_then(|exe| {
        let bin = exe.parent()?;
        if !bin.parent()?.join("pyvenv.cfg").is_file() {
            return None;
        }
        ["python", "python3"]
            .into_iter()
            .map(|name| bin.join(name))
            .find(|p| p.is_file())
    });
    venv_python.unwrap_or_else(|| PathBuf::from("python3"))
}

/// Each module under the first module that imported it, with kind, short
/// hash (or distribution) and the other importers.
fn print_tree(out: &mut impl Write, report: &DepsReport) -> std::io::Result<()> {
    writeln!(out, "{}", report.root.display())?;
    if let Some(function) = &report.function {
        writeln!(out, "function: {function}")?;
    }
    writeln!(out, "python:   {}", report.python)?;
    writeln!(out, "digest:   {}", report.digest)?;
    let Some(root) = report.modules.first() else {
        return Ok(());
    };
    // A spanning tree in breadth-first order from the root: each module sits
    // under the first importer reached, whatever cycles the graph has.
    let mut imports: HashMap<&str, Vec<&ModuleReport>> = HashMap::new();
    for module in report.modules.iter().skip(1) {
        for importer in &module.imported_by {
            imports.entry(importer.as_str()).or_default().push(module);
        }
    }
    let mut children: HashMap<&str, Vec<&ModuleReport>> = HashMap::new();
    let mut placed = std::collections::HashSet::from([root.name.as_str()]);
    let mut queue = std::collections::VecDeque::from([root.name.as_str()]);
    while let Some(name) = queue.pop_front() {
        for module in imports.get(name).into_iter().flatten() {
            if placed.insert(module.name.as_str()) {
                children.entry(name).or_default().push(module);
                queue.push_back(module.name.as_str());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    print_node(out, root, &children, "", true, true, &mut seen)?;
    let counts = report.modules.iter().fold(HashMap::new(), |mut acc, m| {
        *acc.entry(m.kind.as_str()).or_insert(0usize) += 1;
        acc
    });
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort();
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    writeln!(
        out,
        "{} modules: {}",
        report.modules.len(),
        summary.join(", ")
    )?;
    if report.function.is_some() {
        writeln!(out, "reached definitions ({}):", report.definitions.len())?;
        for d in &report.definitions {
            let place = d
                .path
                .as_ref()
                .map(|p| format!("{}:{}", p.display(), d.line))
                .unwrap_or_default();
            writeln!(
                out,
                "  {} {} {}  ({})",
                d.name,
                &d.hash[..12],
                place,
                d.reason
            )?;
        }
        for fb in &report.fallbacks {
            writeln!(out, "whole module {}: {}", fb.module, fb.reason)?;
        }
    }
    Ok(())
}

fn print_node<'a>(
    out: &mut impl Write,
    module: &'a ModuleReport,
    children: &HashMap<&str, Vec<&'a ModuleReport>>,
    prefix: &str,
    last: bool,
    is_root: bool,
    seen: &mut std::collections::HashSet<&'a str>,
) -> std::io::Result<()> {
    let identity = match (&module.distribution, &module.hash) {
        (Some(dist), _) => dist.clone(),
        (None, Some(hash)) => hash[..12].to_owned(),
        (None, None) => String::new(),
    };
    let also = if module.imported_by.len() > 1 {
        format!("  (imported by {})", module.imported_by.join(", "))
    } else {
        String::new()
    };
    let branch = if is_root {
        ""
    } else if last {
        "└── "
    } else {
        "├── "
    };
    writeln!(
        out,
        "{}",
        format!(
            "{prefix}{branch}{} [{}] {identity}{also}",
            module.name,
            module.kind.as_str()
        )
        .trim_end()
    )?;
    if !seen.insert(module.name.as_str()) {
        return Ok(());
    }
    let child_prefix = if is_root {
        String::new()
    } else {
        format!("{prefix}{}", if last { "    " } else { "│   " })
    };
    if let Some(kids) = children.get(module.name.as_str()) {
        for (i, kid) in kids.iter().enumerate() {
            print_node(
                out,
                kid,
                children,
                &child_prefix,
                i + 1 == kids.len(),
                false,
                seen,
            )?;
        }
    }
    Ok(())
}
