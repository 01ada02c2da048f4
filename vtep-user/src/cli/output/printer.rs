//! One printer for both views of every command, in the manner of iproute2's
//! `lib/json_print.c`: each field is one call that writes its text form or
//! its JSON key and value, so that text and `-j` come from one list of
//! fields.
//!
//! Text: a field's template holds one `{}` (or `{:<N}` / `{:>N}` to pad the
//! value to N characters), e.g. `"dev {}"`; fields on one line are separated
//! by one space, and [`Printer::nl`] ends the line. JSON: one compact
//! document per command, ended by a newline; [`Printer::open_object`] and
//! [`Printer::open_array`] nest, and [`Printer::flag`] adds to the current
//! object's `"flags"` array, as `bridge -j fdb` prints `extern_learn`.
//!
//! Everything is written to the `Write` given as it comes (a row at a time,
//! never the whole output first), and its errors are returned: a closed
//! pipe is the caller's to treat (see `crate::cli::main`).

use std::{
    fmt::Display,
    io::{self, Write},
};

/// A container open in JSON mode.
#[derive(Clone, Copy, Debug)]
struct Open {
    object: bool,
    /// Nothing written in it yet (no comma before the next member).
    empty: bool,
    /// Its `"flags"` array is open (objects only).
    flags: bool,
}

/// Writes text or JSON to `out`.
pub struct Printer<W: Write> {
    out: W,
    json: bool,
    /// Text: at the start of a line (no space before the next field).
    line_start: bool,
    /// JSON: the open containers, innermost last.
    open: Vec<Open>,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, json: bool) -> Self {
        Printer {
            out,
            json,
            line_start: true,
            open: Vec::new(),
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Flushes, and gives the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    // ---- fields: one call for both views ---------------------------------

    /// A string field: `"key":"value"`, or `template` with the value in it.
    pub fn str(&mut self, key: &str, template: &str, value: impl Display) -> io::Result<()> {
        self.any(key, template, &value, |out| {
            serde_json::to_writer(out, &value.to_string()).map_err(io::Error::from)
        })
    }

    /// A string field that may be absent: `"key":"value"` or `"key":null`,
    /// or `template` with the value in it (`-` when absent).
    pub fn opt_str(
        &mut self,
        key: &str,
        template: &str,
        value: Option<impl Display>,
    ) -> io::Result<()> {
        let value = value.map(|v| v.to_string());
        let word = value.as_deref().unwrap_or("-");
        self.any(key, template, word, |out| match &value {
            Some(v) => serde_json::to_writer(out, v).map_err(io::Error::from),
            None => out.write_all(b"null"),
        })
    }

    /// A number field: `"key":N`, or `template` with the number in it.
    pub fn uint(&mut self, key: &str, template: &str, value: u64) -> io::Result<()> {
        self.any(key, template, value, |out| write!(out, "{value}"))
    }

    /// A setting: `"key":true|false`, or `template` with `on`/`off` in it
    /// (iproute2's `print_on_off`).
    pub fn on_off(&mut self, key: &str, template: &str, on: bool) -> io::Result<()> {
        let word = if on { "on" } else { "off" };
        self.any(key, template, word, |out| write!(out, "{on}"))
    }

    /// A list of words: `"key":["a","b"]`, or `template` with the words
    /// separated by spaces in it (`-` for none).
    pub fn list<T: Display>(
        &mut self,
        key: &str,
        template: &str,
        items: impl IntoIterator<Item = T>,
    ) -> io::Result<()> {
        let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
        let words = if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(" ")
        };
        self.any(key, template, words, |out| {
            serde_json::to_writer(out, &items).map_err(io::Error::from)
        })
    }

    /// A flag of the current object: an entry of its `"flags"` array, or the
    /// word itself.
    pub fn flag(&mut self, name: &str) -> io::Result<()> {
        if !self.json {
            return self.field("{}", name);
        }
        let top = self.top()?;
        if top.flags {
            self.out.write_all(b",")?;
        } else {
            self.key("flags")?;
            self.out.write_all(b"[")?;
            self.top_mut()?.flags = true;
        }
        serde_json::to_writer(&mut self.out, name).map_err(io::Error::from)
    }

    // ---- text only ---------------------------------------------------------

    /// Words only the text view has (a heading).
    pub fn text(&mut self, words: &str) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        self.field("{}", words)
    }

    /// Ends a text line.
    pub fn nl(&mut self) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        self.line_start = true;
        self.out.write_all(b"\n")
    }

    /// Indents a text line that continues the one before (four spaces).
    pub fn indent(&mut self) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        self.out.write_all(b"    ")
    }

    // ---- JSON only: structure ----------------------------------------------

    /// Opens an object: a member `"key":{` of the current object, or with
    /// `None` an element of the current array (or the whole document).
    pub fn open_object(&mut self, key: Option<&str>) -> io::Result<()> {
        self.open(key, true)
    }

    /// Opens an array, as [`Printer::open_object`] opens an object.
    pub fn open_array(&mut self, key: Option<&str>) -> io::Result<()> {
        self.open(key, false)
    }

    pub fn close_object(&mut self) -> io::Result<()> {
        self.close(true)
    }

    pub fn close_array(&mut self) -> io::Result<()> {
        self.close(false)
    }

    // ---- the machinery -----------------------------------------------------

    /// One field for both views (iproute2's `PRINT_ANY`): `"key":` and what
    /// `json` writes, or `template` with `text` in it.
    fn any(
        &mut self,
        key: &str,
        template: &str,
        text: impl Display,
        json: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.json {
            self.key(key)?;
            json(&mut self.out)
        } else {
            self.field(template, text)
        }
    }

    /// Writes `template` with `value` in place of its `{}` (or `{:<N}`,
    /// `{:>N}`), after a space unless the line starts here.
    fn field(&mut self, template: &str, value: impl Display) -> io::Result<()> {
        let (before, spec, after) = split_template(template);
        if !self.line_start {
            self.out.write_all(b" ")?;
        }
        self.line_start = false;
        self.out.write_all(before.as_bytes())?;
        match spec {
            Pad::None => write!(self.out, "{value}")?,
            Pad::Left(w) => write!(self.out, "{:<w$}", value.to_string())?,
            Pad::Right(w) => write!(self.out, "{:>w$}", value.to_string())?,
        }
        self.out.write_all(after.as_bytes())
    }

    fn top(&self) -> io::Result<Open> {
        self.open
            .last()
            .copied()
            .ok_or_else(|| misuse("no open container"))
    }

    fn top_mut(&mut self) -> io::Result<&mut Open> {
        self.open
            .last_mut()
            .ok_or_else(|| misuse("no open container"))
    }

    /// Closes the current object's `"flags"` array if it is open.
    fn end_flags(&mut self) -> io::Result<()> {
        if let Some(top) = self.open.last_mut()
            && top.flags
        {
            top.flags = false;
            self.out.write_all(b"]")?;
        }
        Ok(())
    }

    /// Writes the comma before a member or element, and `"key":` in an
    /// object.
    fn member(&mut self, key: Option<&str>) -> io::Result<()> {
        self.end_flags()?;
        let Some(top) = self.open.last_mut() else {
            return match key {
                None => Ok(()),
                Some(k) => Err(misuse(&format!("key {k:?} outside an object"))),
            };
        };
        let comma = !top.empty;
        top.empty = false;
        let object = top.object;
        if comma {
            self.out.write_all(b",")?;
        }
        match (object, key) {
            (true, Some(k)) => {
                serde_json::to_writer(&mut self.out, k).map_err(io::Error::from)?;
                self.out.write_all(b":")
            }
            (false, None) => Ok(()),
            (true, None) => Err(misuse("a member without a key")),
            (false, Some(k)) => Err(misuse(&format!("key {k:?} in an array"))),
        }
    }

    fn key(&mut self, key: &str) -> io::Result<()> {
        self.member(Some(key))
    }

    fn open(&mut self, key: Option<&str>, object: bool) -> io::Result<()> {
        if !self.json {
            return Ok(());
        }
        self.member(key)?;
        self.out.write_all(if object { b"{" } else { b"[" })?;
        self.open.push(Open {
            object,
            empty: true,
            flags: false,
        });
        Ok(())
    }

    fn close(&mut self, object: bool) -> io::Result<()> {
        if !self.json {
            return Ok(());
        }
        self.end_flags()?;
        match self.open.pop() {
            Some(o) if o.object == object => {}
            _ => return Err(misuse("closing a container that is not open")),
        }
        self.out.write_all(if object { b"}" } else { b"]" })?;
        if self.open.is_empty() {
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// A printer called out of order: a bug in the caller.
fn misuse(what: &str) -> io::Error {
    io::Error::other(format!("output: {what}"))
}

/// How a template pads its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pad {
    None,
    Left(usize),
    Right(usize),
}

/// `"dev {}"` → (`"dev "`, no padding, `""`); `"{:<10}"` pads on the right.
/// A template without a placeholder gets the value after it.
fn split_template(template: &str) -> (&str, Pad, &str) {
    let Some(open) = template.find('{') else {
        return (template, Pad::None, "");
    };
    let Some(len) = template[open..].find('}') else {
        return (template, Pad::None, "");
    };
    let spec = &template[open + 1..open + len];
    let pad = match spec.as_bytes() {
        [] => Pad::None,
        [b':', b'<', w @ ..] => Pad::Left(width(w)),
        [b':', b'>', w @ ..] => Pad::Right(width(w)),
        _ => Pad::None,
    };
    (&template[..open], pad, &template[open + len + 1..])
}

fn width(digits: &[u8]) -> usize {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What `print` writes, text (`json` false) or JSON.
    pub(crate) fn printed(
        json: bool,
        print: impl FnOnce(&mut Printer<Vec<u8>>) -> io::Result<()>,
    ) -> String {
        let mut p = Printer::new(Vec::new(), json);
        print(&mut p).expect("printing to a Vec");
        String::from_utf8(p.finish().expect("flush")).expect("UTF-8")
    }

    fn sample(p: &mut Printer<Vec<u8>>) -> io::Result<()> {
        p.open_array(None)?;
        for (name, on) in [("a\"b", true), ("c", false)] {
            p.open_object(None)?;
            p.str("name", "{}", name)?;
            p.uint("n", "n {:>3}", 7)?;
            if on {
                p.flag("self")?;
                p.flag("extern_learn")?;
            }
            p.on_off("learning", "learning {}", on)?;
            p.list(
                "ports",
                "ports {}",
                if on { vec!["p1", "p2"] } else { vec![] },
            )?;
            p.nl()?;
            p.close_object()?;
        }
        p.close_array()
    }

    #[test]
    fn one_call_per_field_gives_both_views() {
        assert_eq!(
            printed(false, sample),
            "a\"b n   7 self extern_learn learning on ports p1 p2\n\
             c n   7 learning off ports -\n"
        );
        assert_eq!(
            printed(true, sample),
            "[{\"name\":\"a\\\"b\",\"n\":7,\"flags\":[\"self\",\"extern_learn\"],\
             \"learning\":true,\"ports\":[\"p1\",\"p2\"]},\
             {\"name\":\"c\",\"n\":7,\"learning\":false,\"ports\":[]}]\n"
        );
    }

    #[test]
    fn flags_close_before_the_object_ends() {
        let json = printed(true, |p| {
            p.open_object(None)?;
            p.flag("extern_learn")?;
            p.close_object()
        });
        assert_eq!(json, "{\"flags\":[\"extern_learn\"]}\n");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["flags"][0], "extern_learn");
    }

    #[test]
    fn templates_pad_as_format_does() {
        assert_eq!(split_template("dev {}"), ("dev ", Pad::None, ""));
        assert_eq!(split_template("age {}s"), ("age ", Pad::None, "s"));
        assert_eq!(split_template("{:<10}"), ("", Pad::Left(10), ""));
        assert_eq!(split_template("{:>12}"), ("", Pad::Right(12), ""));
        let text = printed(false, |p| {
            p.indent()?;
            p.str("a", "{:<5}", "x")?;
            p.uint("b", "{:>4}", 12)?;
            p.text("end")?;
            p.nl()
        });
        assert_eq!(text, "    x       12 end\n");
    }

    #[test]
    fn misuse_is_an_error_not_bad_json() {
        let mut p = Printer::new(Vec::new(), true);
        assert!(p.str("key", "{}", "outside an object").is_err());
        assert!(p.close_object().is_err());
        p.open_array(None).unwrap();
        assert!(p.uint("key", "{}", 1).is_err());
    }

    /// A writer whose reader went away.
    struct ClosedPipe;
    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_are_returned() {
        let mut p = Printer::new(ClosedPipe, false);
        let e = p.str("mac", "{}", "02:00:00:00:00:01").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
