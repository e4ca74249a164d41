//! Module resolution with CPython's runtime rules (`importlib._bootstrap` and
//! `FileFinder`), not a type checker's:
//!
//! - built-in, then frozen modules come first and cannot be shadowed;
//! - within one path entry: a regular package (`name/__init__` + suffix)
//!   beats a module file (`name` + suffix), which beats a namespace portion;
//! - suffixes in FileFinder order: extension modules, source, bytecode;
//! - across entries the first regular package or module wins; namespace
//!   portions from every entry are gathered only when none is found;
//! - `a.b.c` is searched in `a.b`'s `__path__`, after importing `a` and `a.b`;
//! - setuptools editable finders are consulted after the path (they are
//!   appended to `sys.meta_path`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::interpreter::Interpreter;

/// Where one module was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Builtin,
    Frozen,
    /// A module file, or a regular package's `__init__` file.
    File {
        path: PathBuf,
        /// The package's `__path__` when this is a regular package.
        package_dir: Option<PathBuf>,
    },
    Namespace {
        portions: Vec<PathBuf>,
    },
}

impl Location {
    /// The directories a submodule of this module is searched in.
    fn submodule_search(&self) -> Option<Vec<PathBuf>> {
        match self {
            Location::File {
                package_dir: Some(dir),
                ..
            } => Some(vec![dir.clone()]),
            Location::Namespace { portions } => Some(portions.clone()),
            _ => None,
        }
    }
}

/// Directory listing: entry name -> is a directory.
type Listing = Arc<HashMap<OsString, bool>>;

/// Resolves dotted names against one interpreter and one script directory.
/// Directory listings and answers are memoized, like FileFinder's own cache.
pub struct Resolver<'i> {
    interpreter: &'i Interpreter,
    search_path: Vec<PathBuf>,
    listings: Mutex<HashMap<PathBuf, Option<Listing>>>,
    answers: Mutex<HashMap<String, Option<Location>>>,
}

impl<'i> Resolver<'i> {
    /// `script_dirs` come first on the search path, as `sys.path[0]` does for
    /// a script.
    pub fn new(interpreter: &'i Interpreter, script_dirs: Vec<PathBuf>) -> Self {
        let mut search_path = script_dirs;
        for entry in &interpreter.sys_path {
            if !search_path.contains(entry) {
                search_path.push(entry.clone());
            }
        }
        Self {
            interpreter,
            search_path,
            listings: Mutex::new(HashMap::new()),
            answers: Mutex::new(HashMap::new()),
        }
    }

    pub fn search_path(&self) -> &[PathBuf] {
        &self.search_path
    }

    /// Resolves `a.b.c` and returns it with every ancestor package, outermost
    /// first: `[a, a.b, a.b.c]`. Stops at the first component not found,
    /// returning the prefix found and the name that failed.
    pub fn resolve_chain(&self, dotted: &str) -> (Vec<(String, Location)>, Option<String>) {
        let mut chain = Vec::new();
        let mut name = String::new();
        for part in dotted.split('.') {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(part);
            match self.resolve_one(&name, chain.last().map(|(_, loc)| loc)) {
                Some(location) => chain.push((name.clone(), location)),
                None => return (chain, Some(name)),
            }
        }
        (chain, None)
    }

    fn resolve_one(&self, name: &str, parent: Option<&Location>) -> Option<Location> {
        if let Some(answer) = self.answers.lock().ok()?.get(name) {
            return answer.clone();
        }
        let answer = match parent {
            None => self.resolve_top_level(name),
            Some(parent) => {
                let last = name.rsplit('.').next().unwrap_or(name);
                parent
                    .submodule_search()
                    .and_then(|dirs| self.find_in(&dirs, last))
            }
        };
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(name.to_owned(), answer.clone());
        }
        answer
    }

    fn resolve_top_level(&self, name: &str) -> Option<Location> {
        // `__main__` always exists at run time: it is the running script.
        if self.interpreter.builtin_modules.contains(name) || name == "__main__" {
            return Some(Location::Builtin);
        }
        if self.interpreter.frozen_modules.contains(name) {
            return Some(Location::Frozen);
        }
        if let Some(found) = self.find_in(&self.search_path, name) {
            return Some(found);
        }
        let target = self.interpreter.editable.get(name)?;
        if target.is_dir() {
            let init = self.package_init(target);
            return Some(match init {
                Some(path) => Location::File {
                    path,
                    package_dir: Some(target.clone()),
                },
                None => Location::Namespace {
                    portions: vec![target.clone()],
                },
            });
        }
        target.is_file().then(|| Location::File {
            path: target.clone(),
            package_dir: None,
        })
    }

    /// FileFinder over several directories, PathFinder-style.
    fn find_in(&self, dirs: &[PathBuf], name: &str) -> Option<Location> {
        let mut portions = Vec::new();
        for dir in dirs {
            let Some(listing) = self.listing(dir) else {
                continue;
            };
            if listing.get(std::ffi::OsStr::new(name)) == Some(&true) {
                let package_dir = dir.join(name);
                if let Some(init) = self.package_init(&package_dir) {
                    return Some(Location::File {
                        path: init,
                        package_dir: Some(package_dir),
                    });
                }
                // A namespace portion, unless a module file follows in this
                // same directory.
                if let Some(path) = self.module_file(dir, &listing, name) {
                    return Some(Location::File {
                        path,
                        package_dir: None,
                    });
                }
                portions.push(package_dir);
                continue;
            }
            if let Some(path) = self.module_file(dir, &listing, name) {
                return Some(Location::File {
                    path,
                    package_dir: None,
                });
            }
        }
        (!portions.is_empty()).then_some(Location::Namespace { portions })
    }

    fn module_file(&self, dir: &Path, listing: &Listing, name: &str) -> Option<PathBuf> {
        self.interpreter.suffixes().find_map(|suffix| {
            let file = format!("{name}{suffix}");
            (listing.get(std::ffi::OsStr::new(&file)) == Some(&false)).then(|| dir.join(file))
        })
    }

    fn package_init(&self, package_dir: &Path) -> Option<PathBuf> {
        let listing = self.listing(package_dir)?;
        self.module_file(package_dir, &listing, "__init__")
    }

    fn listing(&self, dir: &Path) -> Option<Listing> {
        if let Some(cached) = self.listings.lock().ok()?.get(dir) {
            return cached.clone();
        }
        let listing = read_listing(dir).map(Arc::new);
        if let Ok(mut listings) = self.listings.lock() {
            listings.insert(dir.to_path_buf(), listing.clone());
        }
        listing
    }
}

fn read_listing(dir: &Path) -> Option<HashMap<OsString, bool>> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut listing = HashMap::new();
    for entry in entries.flatten() {
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => entry.path().is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => continue,
        };
        listing.insert(entry.file_name(), is_dir);
    }
    Some(listing)
}

/// The absolute module name a relative import refers to, per
/// `importlib._bootstrap._resolve_name`. `package` is the importing module's
/// `__package__`. `None` when the dots climb past the top-level package.
pub fn resolve_relative(module: &str, level: u32, package: &str) -> Option<String> {
    if level == 0 {
        return Some(module.to_owned());
    }
    if package.is_empty() {
        return None;
    }
    let parts: Vec<&str> = package.split('.').collect();
    let keep = parts.len().checked_sub(level as usize - 1)?;
    if keep == 0 {
        return None;
    }
    let base = parts[..keep].join(".");
    Some(if module.is_empty() {
        base
    } else {
        format!("{base}.{module}")
    })
}

#[cfg(test)]
mod tests {
    use super::resolve_relative;

    #[test]
    fn relative_names() {
        assert_eq!(
            resolve_relative("x", 1, "pkg.sub").as_deref(),
            Some("pkg.sub.x")
        );
        assert_eq!(
            resolve_relative("x", 2, "pkg.sub").as_deref(),
            Some("pkg.x")
        );
        assert_eq!(resolve_relative("", 2, "pkg.sub").as_deref(), Some("pkg"));
        assert_eq!(resolve_relative("x", 3, "pkg.sub"), None);
        assert_eq!(resolve_relative("x", 1, ""), None);
    }
}
