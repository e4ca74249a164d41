//! Expression encoding.

use ruff_python_ast::{
    BoolOp, CmpOp, Comprehension, ConversionFlag, Expr, FStringPart, InterpolatedStringElement,
    Keyword, Number, Operator, UnaryOp,
};

use super::{canonical_int, Encoder};

/// Expression tags. Never renumber: append, and bump the format version.
mod tag {
    pub const BOOL_OP: u8 = 101;
    pub const NAMED: u8 = 102;
    pub const BIN_OP: u8 = 103;
    pub const UNARY_OP: u8 = 104;
    pub const LAMBDA: u8 = 105;
    pub const IF: u8 = 106;
    pub const DICT: u8 = 107;
    pub const SET: u8 = 108;
    pub const LIST_COMP: u8 = 109;
    pub const SET_COMP: u8 = 110;
    pub const DICT_COMP: u8 = 111;
    pub const GENERATOR: u8 = 112;
    pub const AWAIT: u8 = 113;
    pub const YIELD: u8 = 114;
    pub const YIELD_FROM: u8 = 115;
    pub const COMPARE: u8 = 116;
    pub const CALL: u8 = 117;
    pub const FSTRING: u8 = 118;
    pub const TSTRING: u8 = 119;
    pub const STR: u8 = 120;
    pub const BYTES: u8 = 121;
    pub const INT: u8 = 122;
    pub const FLOAT: u8 = 123;
    pub const COMPLEX: u8 = 124;
    pub const BOOL: u8 = 125;
    pub const NONE: u8 = 126;
    pub const ELLIPSIS: u8 = 127;
    pub const ATTRIBUTE: u8 = 128;
    pub const SUBSCRIPT: u8 = 129;
    pub const STARRED: u8 = 130;
    pub const NAME: u8 = 131;
    pub const LIST: u8 = 132;
    pub const TUPLE: u8 = 133;
    pub const SLICE: u8 = 134;
    pub const IPY: u8 = 135;
    pub const COMPREHENSION: u8 = 150;
    pub const ARGUMENTS: u8 = 151;
    pub const KEYWORD: u8 = 152;
    pub const INTERPOLATION: u8 = 153;
    pub const LITERAL_TEXT: u8 = 154;
    pub const SOME: u8 = 160;
    pub const ABSENT: u8 = 161;
}

/// One piece of an f-string after implicit concatenation has been undone:
/// adjacent literal text is merged, so `"a" f"{x}"` equals `f"a{x}"`.
enum Piece<'a> {
    Text(String),
    Interpolation(&'a ruff_python_ast::InterpolatedElement),
}

fn push_elements<'a>(pieces: &mut Vec<Piece<'a>>, elements: &'a [InterpolatedStringElement]) {
    for element in elements {
        match element {
            InterpolatedStringElement::Literal(lit) => push_text(pieces, &lit.value),
            InterpolatedStringElement::Interpolation(i) => pieces.push(Piece::Interpolation(i)),
        }
    }
}

fn push_text(pieces: &mut Vec<Piece<'_>>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Piece::Text(last)) = pieces.last_mut() {
        last.push_str(text);
    } else {
        pieces.push(Piece::Text(text.to_owned()));
    }
}

impl Encoder {
    pub(super) fn exprs(&mut self, exprs: &[Expr]) {
        self.sink.len(exprs.len());
        for expr in exprs {
            self.expr(expr);
        }
    }

    pub(super) fn opt_expr(&mut self, expr: Option<&Expr>) {
        match expr {
            Some(expr) => {
                self.sink.tag(tag::SOME);
                self.expr(expr);
            }
            None => self.sink.tag(tag::ABSENT),
        }
    }

    pub(super) fn expr(&mut self, expr: &Expr) {
        match expr {
            Expr::BoolOp(e) => {
                self.sink.tag(tag::BOOL_OP);
                self.sink.u64(match e.op {
                    BoolOp::And => 0,
                    BoolOp::Or => 1,
                });
                self.exprs(&e.values);
            }
            Expr::Named(e) => {
                self.sink.tag(tag::NAMED);
                self.expr(&e.target);
                self.expr(&e.value);
            }
            Expr::BinOp(e) => {
                self.sink.tag(tag::BIN_OP);
                self.expr(&e.left);
                self.operator(e.op);
                self.expr(&e.right);
            }
            Expr::UnaryOp(e) => {
                self.sink.tag(tag::UNARY_OP);
                self.sink.u64(match e.op {
                    UnaryOp::Invert => 0,
                    UnaryOp::Not => 1,
                    UnaryOp::UAdd => 2,
                    UnaryOp::USub => 3,
                });
                self.expr(&e.operand);
            }
            Expr::Lambda(e) => {
                self.sink.tag(tag::LAMBDA);
                match e.parameters.as_deref() {
                    Some(p) => {
                        self.sink.bool(true);
                        self.parameters(p);
                    }
                    None => self.sink.bool(false),
                }
                self.expr(&e.body);
            }
            Expr::If(e) => {
                self.sink.tag(tag::IF);
                self.expr(&e.test);
                self.expr(&e.body);
                self.expr(&e.orelse);
            }
            Expr::Dict(e) => {
                self.sink.tag(tag::DICT);
                self.sink.len(e.items.len());
                for item in &e.items {
                    self.opt_expr(item.key.as_ref());
                    self.expr(&item.value);
                }
            }
            Expr::Set(e) => {
                self.sink.tag(tag::SET);
                self.exprs(&e.elts);
            }
            Expr::ListComp(e) => {
                self.sink.tag(tag::LIST_COMP);
                self.expr(&e.elt);
                self.comprehensions(&e.generators);
            }
            Expr::SetComp(e) => {
                self.sink.tag(tag::SET_COMP);
                self.expr(&e.elt);
                self.comprehensions(&e.generators);
            }
            Expr::DictComp(e) => {
                self.sink.tag(tag::DICT_COMP);
                self.opt_expr(e.key.as_deref());
                self.expr(&e.value);
                self.comprehensions(&e.generators);
            }
            Expr::Generator(e) => {
                // `f(x for x in y)` and `f((x for x in y))` are the same call.
                self.sink.tag(tag::GENERATOR);
                self.expr(&e.elt);
                self.comprehensions(&e.generators);
            }
            Expr::Await(e) => {
                self.sink.tag(tag::AWAIT);
                self.expr(&e.value);
            }
            Expr::Yield(e) => {
                self.sink.tag(tag::YIELD);
                self.opt_expr(e.value.as_deref());
            }
            Expr::YieldFrom(e) => {
                self.sink.tag(tag::YIELD_FROM);
                self.expr(&e.value);
            }
            Expr::Compare(e) => {
                self.sink.tag(tag::COMPARE);
                self.expr(&e.left);
                self.sink.len(e.ops.len());
                for op in e.ops.iter() {
                    self.sink.u64(cmp_op_code(*op));
                }
                self.exprs(&e.comparators);
            }
            Expr::Call(e) => {
                self.sink.tag(tag::CALL);
                self.expr(&e.func);
                self.arguments(&e.arguments.args, &e.arguments.keywords);
            }
            Expr::FString(e) => {
                let mut pieces = Vec::new();
                for part in e.value.iter() {
                    match part {
                        FStringPart::Literal(lit) => push_text(&mut pieces, &lit.value),
                        FStringPart::FString(f) => push_elements(&mut pieces, &f.elements),
                    }
                }
                self.interpolated(tag::FSTRING, &pieces);
            }
            Expr::TString(e) => {
                // A template keeps its parts apart at run time, so every
                // part is encoded, never merged into a plain string.
                let mut pieces = Vec::new();
                for part in e.value.iter() {
                    push_elements(&mut pieces, &part.elements);
                }
                self.sink.tag(tag::TSTRING);
                self.pieces(&pieces);
            }
            Expr::StringLiteral(e) => {
                self.sink.tag(tag::STR);
                self.sink.str(e.value.to_str());
            }
            Expr::BytesLiteral(e) => {
                self.sink.tag(tag::BYTES);
                let bytes: Vec<u8> = e.value.bytes().collect();
                self.sink.bytes(&bytes);
            }
            Expr::NumberLiteral(e) => match &e.value {
                Number::Int(int) => {
                    self.sink.tag(tag::INT);
                    self.sink.str(&canonical_int(&int.to_string()));
                }
                Number::Float(value) => {
                    self.sink.tag(tag::FLOAT);
                    self.sink.f64(*value);
                }
                Number::Complex { real, imag } => {
                    self.sink.tag(tag::COMPLEX);
                    self.sink.f64(*real);
                    self.sink.f64(*imag);
                }
            },
            Expr::BooleanLiteral(e) => {
                self.sink.tag(tag::BOOL);
                self.sink.bool(e.value);
            }
            Expr::NoneLiteral(_) => self.sink.tag(tag::NONE),
            Expr::EllipsisLiteral(_) => self.sink.tag(tag::ELLIPSIS),
            Expr::Attribute(e) => {
                self.sink.tag(tag::ATTRIBUTE);
                self.expr(&e.value);
                self.sink.str(&e.attr.id);
            }
            Expr::Subscript(e) => {
                self.sink.tag(tag::SUBSCRIPT);
                self.expr(&e.value);
                self.expr(&e.slice);
            }
            Expr::Starred(e) => {
                self.sink.tag(tag::STARRED);
                self.expr(&e.value);
            }
            Expr::Name(e) => {
                self.sink.tag(tag::NAME);
                self.sink.str(&e.id);
            }
            Expr::List(e) => {
                self.sink.tag(tag::LIST);
                self.exprs(&e.elts);
            }
            Expr::Tuple(e) => {
                // Parentheses around a tuple are trivia; the comma is not.
                self.sink.tag(tag::TUPLE);
                self.exprs(&e.elts);
            }
            Expr::Slice(e) => {
                self.sink.tag(tag::SLICE);
                self.opt_expr(e.lower.as_deref());
                self.opt_expr(e.upper.as_deref());
                self.opt_expr(e.step.as_deref());
            }
            Expr::IpyEscapeCommand(e) => {
                self.sink.tag(tag::IPY);
                self.sink.u64(e.kind as u64);
                self.sink.str(&e.value);
            }
        }
    }

    /// An f-string with no interpolation is just a string: `f"abc" == "abc"`.
    fn interpolated(&mut self, string_tag: u8, pieces: &[Piece<'_>]) {
        if pieces.iter().all(|piece| matches!(piece, Piece::Text(_))) {
            self.sink.tag(tag::STR);
            let text: String = pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Text(t) => t.as_str(),
                    Piece::Interpolation(_) => "",
                })
                .collect();
            self.sink.str(&text);
            return;
        }
        self.sink.tag(string_tag);
        self.pieces(pieces);
    }

    fn pieces(&mut self, pieces: &[Piece<'_>]) {
        self.sink.len(pieces.len());
        for piece in pieces {
            match piece {
                Piece::Text(text) => {
                    self.sink.tag(tag::LITERAL_TEXT);
                    self.sink.str(text);
                }
                Piece::Interpolation(i) => {
                    self.sink.tag(tag::INTERPOLATION);
                    self.expr(&i.expression);
                    // `f"{x=}"` prints "x=", `f"{x = }"` prints "x = ".
                    self.opt_identifier(i.debug_text.as_ref().map(|d| d.as_str()));
                    self.sink.u64(match i.conversion {
                        ConversionFlag::None => 0,
                        ConversionFlag::Str => 1,
                        ConversionFlag::Ascii => 2,
                        ConversionFlag::Repr => 3,
                    });
                    match i.format_spec.as_deref() {
                        Some(spec) => {
                            self.sink.bool(true);
                            let mut inner = Vec::new();
                            push_elements(&mut inner, &spec.elements);
                            self.pieces(&inner);
                        }
                        None => self.sink.bool(false),
                    }
                }
            }
        }
    }

    fn comprehensions(&mut self, generators: &[Comprehension]) {
        self.sink.len(generators.len());
        for generator in generators {
            self.sink.tag(tag::COMPREHENSION);
            self.sink.bool(generator.is_async);
            self.expr(&generator.target);
            self.expr(&generator.iter);
            self.exprs(&generator.ifs);
        }
    }

    pub(super) fn arguments(&mut self, args: &[Expr], keywords: &[Keyword]) {
        self.sink.tag(tag::ARGUMENTS);
        self.exprs(args);
        self.sink.len(keywords.len());
        for keyword in keywords {
            self.sink.tag(tag::KEYWORD);
            self.opt_identifier(keyword.arg.as_ref().map(|a| a.id.as_str()));
            self.expr(&keyword.value);
        }
    }

    pub(super) fn operator(&mut self, op: Operator) {
        self.sink.u64(match op {
            Operator::Add => 0,
            Operator::Sub => 1,
            Operator::Mult => 2,
            Operator::MatMult => 3,
            Operator::Div => 4,
            Operator::Mod => 5,
            Operator::Pow => 6,
            Operator::LShift => 7,
            Operator::RShift => 8,
            Operator::BitOr => 9,
            Operator::BitXor => 10,
            Operator::BitAnd => 11,
            Operator::FloorDiv => 12,
        });
    }
}

fn cmp_op_code(op: CmpOp) -> u64 {
    match op {
        CmpOp::Eq => 0,
        CmpOp::NotEq => 1,
        CmpOp::Lt => 2,
        CmpOp::LtE => 3,
        CmpOp::Gt => 4,
        CmpOp::GtE => 5,
        CmpOp::Is => 6,
        CmpOp::IsNot => 7,
        CmpOp::In => 8,
        CmpOp::NotIn => 9,
    }
}
