//! `match` pattern encoding.

use ruff_python_ast::Pattern;

use super::Encoder;

/// Pattern tags. Never renumber: append, and bump the format version.
mod tag {
    pub const P_VALUE: u8 = 60;
    pub const P_SINGLETON: u8 = 61;
    pub const P_SEQUENCE: u8 = 62;
    pub const P_MAPPING: u8 = 63;
    pub const P_CLASS: u8 = 64;
    pub const P_STAR: u8 = 65;
    pub const P_AS: u8 = 66;
    pub const P_OR: u8 = 67;
}

impl Encoder {
    pub(super) fn pattern(&mut self, pattern: &Pattern) {
        match pattern {
            Pattern::MatchValue(p) => {
                self.sink.tag(tag::P_VALUE);
                self.expr(&p.value);
            }
            Pattern::MatchSingleton(p) => {
                self.sink.tag(tag::P_SINGLETON);
                self.sink.u64(p.value as u64);
            }
            Pattern::MatchSequence(p) => {
                self.sink.tag(tag::P_SEQUENCE);
                self.patterns(&p.patterns);
            }
            Pattern::MatchMapping(p) => {
                self.sink.tag(tag::P_MAPPING);
                self.exprs(&p.keys);
                self.patterns(&p.patterns);
                self.opt_identifier(p.rest.as_ref().map(|n| n.id.as_str()));
            }
            Pattern::MatchClass(p) => {
                self.sink.tag(tag::P_CLASS);
                self.expr(&p.cls);
                self.patterns(&p.arguments.patterns);
                self.sink.len(p.arguments.keywords.len());
                for keyword in &p.arguments.keywords {
                    self.sink.str(&keyword.attr.id);
                    self.pattern(&keyword.pattern);
                }
            }
            Pattern::MatchStar(p) => {
                self.sink.tag(tag::P_STAR);
                self.opt_identifier(p.name.as_ref().map(|n| n.id.as_str()));
            }
            Pattern::MatchAs(p) => {
                self.sink.tag(tag::P_AS);
                match p.pattern.as_deref() {
                    Some(inner) => {
                        self.sink.bool(true);
                        self.pattern(inner);
                    }
                    None => self.sink.bool(false),
                }
                self.opt_identifier(p.name.as_ref().map(|n| n.id.as_str()));
            }
            Pattern::MatchOr(p) => {
                self.sink.tag(tag::P_OR);
                self.patterns(&p.patterns);
            }
        }
    }

    fn patterns(&mut self, patterns: &[Pattern]) {
        self.sink.len(patterns.len());
        for pattern in patterns {
            self.pattern(pattern);
        }
    }
}
