//! Where a module was found decides how it counts in the digest: under a
//! site directory it is third-party (identified by its distribution), under
//! the stdlib directories it is the standard library (the Python version),
//! anywhere else it is project code (normalized AST) or a compiled
//! extension (its bytes). Never by its name.

use std::path::PathBuf;

use crate::interpreter::Interpreter;
use crate::report::ModuleKind;
use crate::resolve::Location;

pub struct Classifier<'a> {
    interpreter: &'a Interpreter,
    thirdparty_roots: Vec<PathBuf>,
    stdlib_roots: Vec<PathBuf>,
}

impl<'a> Classifier<'a> {
    pub fn new(interpreter: &'a Interpreter) -> Self {
        let mut thirdparty_roots = interpreter.site_dirs.clone();
        for entry in &interpreter.sys_path {
            let text = entry.to_string_lossy();
            if (text.contains("site-packages") || text.contains("dist-packages"))
                && !thirdparty_roots.contains(entry)
            {
                thirdparty_roots.push(entry.clone());
            }
        }
        let mut stdlib_roots = interpreter.stdlib_dirs.clone();
        for entry in &interpreter.sys_path {
            let related = interpreter
                .stdlib_dirs
                .iter()
                .any(|d| entry.starts_with(d) || d.starts_with(entry));
            if related && !stdlib_roots.contains(entry) {
                stdlib_roots.push(entry.clone());
            }
        }
        Self {
            interpreter,
            thirdparty_roots,
            stdlib_roots,
        }
    }

    fn has_suffix(name: Option<&str>, suffixes: &[String]) -> bool {
        name.is_some_and(|n| suffixes.iter().any(|s| n.ends_with(s.as_str())))
    }

    pub fn classify(&self, name: &str, location: &Location) -> (ModuleKind, Option<String>) {
        let path = match location {
            Location::Builtin => return (ModuleKind::Builtin, None),
            Location::Frozen => return (ModuleKind::Stdlib, None),
            Location::File { path, .. } => path.as_path(),
            Location::Namespace { portions } => portions[0].as_path(),
        };
        let top = name.split('.').next().unwrap_or(name);
        if self.thirdparty_roots.iter().any(|r| path.starts_with(r)) {
            return (
                ModuleKind::Thirdparty,
                self.interpreter.distributions.get(top).cloned(),
            );
        }
        if self.stdlib_roots.iter().any(|r| path.starts_with(r)) {
            return (ModuleKind::Stdlib, None);
        }
        let file_name = path.file_name().and_then(|n| n.to_str());
        let is_source = Self::has_suffix(file_name, &self.interpreter.source_suffixes);
        if matches!(location, Location::File { .. })
            && !is_source
            && Self::has_suffix(file_name, &self.interpreter.extension_suffixes)
        {
            return (ModuleKind::Extension, None);
        }
        (ModuleKind::Local, None)
    }
}
