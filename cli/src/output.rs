//! Data to stdout, buffered, one place.

use std::io::Write;

use anyhow::{Context, Result};

pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value).context("cannot write to stdout")?;
    writeln!(out).context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")
}

pub fn print_lines(lines: &[String]) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in lines {
        writeln!(out, "{line}").context("cannot write to stdout")?;
    }
    out.flush().context("cannot write to stdout")
}
