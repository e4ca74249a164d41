//! Table-driven resolution tests over `fixtures/resolution/*`, each a small
//! project exercising one CPython import rule, analyzed with the real
//! `python3` on PATH.

use std::path::{Path, PathBuf};

use casher_analyzer::{analyze, AnalyzeOptions, AnalyzerError, DepsReport, ModuleKind};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/resolution")
        .join(case)
}

fn run(case: &str, file: &str) -> DepsReport {
    analyze(&fixture(case).join(file), &AnalyzeOptions::default())
        .unwrap_or_else(|e| panic!("{case}: {e}"))
}

/// (module, kind, path suffix or "" for no path)
fn check(report: &DepsReport, expected: &[(&str, ModuleKind, &str)]) {
    for (name, kind, suffix) in expected {
        let module = report
            .modules
            .iter()
            .find(|m| m.name == *name)
            .unwrap_or_else(|| panic!("module {name} missing from {:#?}", report.modules));
        assert_eq!(module.kind, *kind, "kind of {name}");
        match (&module.path, suffix.is_empty()) {
            (None, true) => {}
            (Some(path), false) => assert!(
                path.ends_with(suffix),
                "{name}: {} does not end with {suffix}",
                path.display()
            ),
            (path, _) => panic!("{name}: unexpected path {path:?}, wanted {suffix:?}"),
        }
        if *kind == ModuleKind::Local && !suffix.is_empty() {
            assert!(module.hash.is_some(), "{name} has no hash");
        }
    }
}

fn absent(report: &DepsReport, names: &[&str]) {
    for name in names {
        assert!(
            report.modules.iter().all(|m| m.name != *name),
            "{name} should not be a dependency"
        );
    }
}

use ModuleKind::*;

#[test]
fn extension_suffix_comes_before_source() {
    let r = run("suffix_order", "main.py");
    check(
        &r,
        &[
            ("fastmod", Extension, "suffix_order/fastmod.so"),
            ("plain", Local, "suffix_order/plain.py"),
        ],
    );
}

#[test]
fn regular_package_beats_earlier_namespace_portion() {
    // app/ searched first (as on PYTHONPATH), then the directory above app.
    let options = AnalyzeOptions {
        extra_paths: vec![fixture("package_vs_namespace").join("app")],
        ..AnalyzeOptions::default()
    };
    let r = analyze(
        &fixture("package_vs_namespace").join("app/main.py"),
        &options,
    )
    .unwrap();
    assert_eq!(r.modules[0].name, "app.main");
    check(
        &r,
        &[
            ("shared", Local, "package_vs_namespace/shared/__init__.py"),
            ("nsp", Local, ""),
            ("nsp.a", Local, "app/nsp/a.py"),
            ("nsp.b", Local, "package_vs_namespace/nsp/b.py"),
        ],
    );
}

#[test]
fn ancestors_are_imported() {
    let r = run("ancestors", "main.py");
    check(
        &r,
        &[
            ("a", Local, "a/__init__.py"),
            ("a.b", Local, "a/b/__init__.py"),
            ("a.b.c", Local, "a/b/c.py"),
        ],
    );
}

#[test]
fn relative_imports_in_packages_and_modules() {
    let r = run("relative", "main.py");
    check(
        &r,
        &[
            ("pkg", Local, "pkg/__init__.py"),
            ("pkg.sibling", Local, "pkg/sibling.py"),
            ("pkg.sub", Local, "pkg/sub/__init__.py"),
            ("pkg.sub.leaf", Local, "pkg/sub/leaf.py"),
            ("pkg.sub.other", Local, "pkg/sub/other.py"),
            ("...toofar", Unresolved, ""),
        ],
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("leaf.py:3") && w.contains("beyond the top-level package")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn from_import_finds_submodules_not_attributes() {
    let r = run("from_import", "main.py");
    check(&r, &[("pkg.submod", Local, "pkg/submod.py")]);
    absent(&r, &["pkg.attr", "pkg.notimported"]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn star_import_follows_all() {
    let r = run("star", "main.py");
    check(
        &r,
        &[
            ("pkg.alpha", Local, "pkg/alpha.py"),
            ("pkg.beta", Local, "pkg/beta.py"),
        ],
    );
    absent(&r, &["pkg.gamma", "pkg.helper"]);
}

#[test]
fn imports_in_every_block() {
    let r = run("nested", "main.py");
    for name in [
        "in_function",
        "in_class",
        "in_try",
        "in_except",
        "in_if",
        "in_match",
    ] {
        check(&r, &[(name, Local, &format!("{name}.py"))]);
    }
}

#[test]
fn literal_dynamic_imports() {
    let r = run("dynamic", "main.py");
    check(
        &r,
        &[
            ("dyn_a", Local, "dyn_a.py"),
            ("pkg.inner", Local, "pkg/inner.py"),
            ("dyn_b", Local, "dyn_b.py"),
        ],
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("main.py:8") && w.contains("computed name")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn local_module_shadows_stdlib_but_not_builtin() {
    let r = run("shadowing", "main.py");
    check(
        &r,
        &[
            ("random", Local, "shadowing/random.py"),
            ("sys", Builtin, ""),
            ("json", Stdlib, "json/__init__.py"),
        ],
    );
}

#[test]
fn coding_cookie_bom_and_crlf() {
    let r = run("encodings", "main.py");
    check(
        &r,
        &[
            ("latin", Local, "latin.py"),
            ("bom", Local, "bom.py"),
            ("crlf", Local, "crlf.py"),
        ],
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn unresolved_imports_are_listed_with_importer_and_line() {
    let r = run("unresolved", "main.py");
    check(
        &r,
        &[
            ("does_not_exist", Unresolved, ""),
            ("also_missing", Unresolved, ""),
        ],
    );
    let missing = r
        .modules
        .iter()
        .find(|m| m.name == "does_not_exist")
        .unwrap();
    assert_eq!(missing.imported_by, vec!["main".to_owned()]);
    assert!(
        r.warnings.iter().any(|w| w.contains("main.py:4")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn syntax_error_in_a_dependency_is_reported() {
    let r = run("dep_syntax_error", "main.py");
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].contains("broken.py:1:"), "{}", r.errors[0]);
}

#[test]
fn syntax_error_in_the_root_is_an_error() {
    let err = analyze(
        &fixture("root_syntax_error").join("main.py"),
        &AnalyzeOptions::default(),
    )
    .unwrap_err();
    match err {
        AnalyzerError::Syntax { path, line, .. } => {
            assert!(path.ends_with("main.py"));
            assert!(line >= 1);
        }
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[test]
fn missing_function_is_an_error() {
    let options = AnalyzeOptions {
        function: Some("nope".into()),
        ..AnalyzeOptions::default()
    };
    let err = analyze(&fixture("ancestors").join("main.py"), &options).unwrap_err();
    assert!(
        matches!(err, AnalyzerError::FunctionNotFound { .. }),
        "{err}"
    );
}

#[test]
fn second_run_reparses_nothing_and_edits_are_seen() {
    let project = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("main.py"), "import helper\n").unwrap();
    std::fs::write(project.path().join("helper.py"), "def h():\n    return 1\n").unwrap();
    let options = AnalyzeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..AnalyzeOptions::default()
    };
    let main = project.path().join("main.py");
    let first = analyze(&main, &options).unwrap();
    assert_eq!(first.stats.parsed, 2);
    let second = analyze(&main, &options).unwrap();
    assert_eq!(second.stats.parsed, 0);
    assert_eq!(first.digest, second.digest);

    // A reformat re-parses the file but keeps the digest...
    std::fs::write(
        project.path().join("helper.py"),
        "def h( ):\n    # comment\n    return (1)\n",
    )
    .unwrap();
    let reformatted = analyze(&main, &options).unwrap();
    assert_eq!(reformatted.stats.parsed, 1);
    assert_eq!(reformatted.digest, first.digest);

    // ...and a semantic edit changes it.
    std::fs::write(project.path().join("helper.py"), "def h():\n    return 2\n").unwrap();
    let edited = analyze(&main, &options).unwrap();
    assert_ne!(edited.digest, first.digest);
}

#[test]
fn function_name_is_part_of_the_digest() {
    let main = fixture("nested").join("main.py");
    let whole = run("nested", "main.py");
    let options = AnalyzeOptions {
        function: Some("f".into()),
        ..AnalyzeOptions::default()
    };
    let f = analyze(&main, &options).unwrap();
    assert_ne!(whole.digest, f.digest);
}
