//! The arguments of calls (`field(..)`, `jsonl(..)`, `classify(..)`, `cuda(..)`): every argument
//! is one the call takes, or E1211. Nothing is dropped silently and no named argument is read as
//! a positional one.

use super::cx::{file_id, Cx};
use super::suggest;
use crate::syntax::ast::{Arg, Ident};
use crate::syntax::{Code, Diagnostic};

impl Cx<'_> {
    /// Reports every argument of `callee(args)` beyond `positional` unnamed ones or not named in
    /// `named`, and a name given twice. `usage` shows the call written right. Returns whether all
    /// arguments are taken.
    pub fn call_args(
        &mut self,
        callee: &Ident,
        args: &[Arg],
        m: usize,
        positional: usize,
        named: &[&str],
        usage: &str,
    ) -> bool {
        let mut ok = true;
        let mut seen_pos = 0;
        let mut seen_named: Vec<&str> = Vec::new();
        for a in args {
            let (span, message, label, help) = match &a.name {
                None => {
                    seen_pos += 1;
                    if seen_pos <= positional {
                        continue;
                    }
                    let takes = match positional {
                        0 => "no unnamed argument".to_string(),
                        1 => "one unnamed argument".to_string(),
                        n => format!("{n} unnamed arguments"),
                    };
                    (
                        a.value.span,
                        format!("`{}` takes {takes}", callee.name),
                        "extra argument".to_string(),
                        format!("write {usage}"),
                    )
                }
                Some(n) if named.contains(&n.name.as_str()) => {
                    if !seen_named.contains(&n.name.as_str()) {
                        seen_named.push(&n.name);
                        continue;
                    }
                    (
                        n.span,
                        format!("`{}` is given twice", n.name),
                        "given again here".to_string(),
                        "remove one of them".to_string(),
                    )
                }
                Some(n) => {
                    let help = match suggest::did_you_mean(&n.name, named.iter().copied()) {
                        Some(h) => h,
                        None if named.is_empty() => {
                            format!("`{}` takes no named arguments: write {usage}", callee.name)
                        }
                        None => format!(
                            "`{}` takes {}: write {usage}",
                            callee.name,
                            named.join(", ")
                        ),
                    };
                    (
                        n.span,
                        format!("`{}` has no argument `{}`", callee.name, n.name),
                        "unknown argument".to_string(),
                        help,
                    )
                }
            };
            ok = false;
            self.emit(
                Diagnostic::new(Code::UnusedArgument, file_id(m), span, message)
                    .with_label(label)
                    .with_help(help),
            );
        }
        ok
    }

    /// [`Self::call_args`] for a call that takes only unnamed arguments.
    pub fn positional_only(
        &mut self,
        callee: &Ident,
        args: &[Arg],
        m: usize,
        max: usize,
        usage: &str,
    ) -> bool {
        self.call_args(callee, args, m, max, &[], usage)
    }
}
