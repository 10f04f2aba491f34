//! `read_file` and `list_dir`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};

use super::{Workspace, WorkspaceError, cut_line};

/// Files up to this size are read at once (and their lines counted for the note); larger ones
/// are streamed up to the requested range.
const WHOLE_FILE: u64 = 8 * 1024 * 1024;
/// Bytes looked at to tell a binary file (one with a NUL byte) from text.
const SNIFF: usize = 8 * 1024;

impl Workspace {
    /// Reads a text file with line numbers (`cat -n` style: the number right-aligned in six
    /// columns, a tab, the line). `offset` is the first line (from 1), `limit` the number of
    /// lines (default [`super::Limits::read_lines`]). Long lines, and output beyond
    /// [`super::Limits::output_bytes`], are cut with a note; a note at the end says which lines
    /// were shown when not all were. A binary file (a NUL byte in its first 8 KiB) is described,
    /// not shown.
    pub fn read_file(
        &self,
        path: &str,
        offset: Option<usize>,
        limit: Option<usize>,
    ) -> Result<String, WorkspaceError> {
        let r = self.resolve_inner(path, false)?;
        let mut file = std::fs::File::open(&r.full).map_err(|e| WorkspaceError::io(&r.rel, &e))?;
        let meta = file
            .metadata()
            .map_err(|e| WorkspaceError::io(&r.rel, &e))?;
        if meta.is_dir() {
            return Err(WorkspaceError::IsDirectory {
                path: r.rel,
                hint: "; use list_dir",
            });
        }
        let limits = self.limits();
        let first = offset.unwrap_or(1).max(1);
        let count = limit.unwrap_or(limits.read_lines).max(1);
        let end = first.saturating_add(count);
        let size = meta.len();

        // A file small enough is read in one go (one read call, its size known); a larger one
        // is sniffed, then streamed.
        let mut head = if size <= WHOLE_FILE {
            let mut all = Vec::with_capacity(size as usize + 1);
            file.read_to_end(&mut all)
                .map_err(|e| WorkspaceError::io(&r.rel, &e))?;
            all
        } else {
            let mut head = vec![0u8; SNIFF];
            let got =
                read_up_to(&mut file, &mut head).map_err(|e| WorkspaceError::io(&r.rel, &e))?;
            head.truncate(got);
            head
        };
        if head[..head.len().min(SNIFF)].contains(&0) {
            return Ok(format!(
                "[`{}` is a binary file ({size} bytes); not shown]",
                r.rel
            ));
        }
        if head.is_empty() {
            return Ok(format!("[`{}` is empty]", r.rel));
        }

        let mut out = String::new();
        let mut shown = 0usize;
        let mut last = first.saturating_sub(1);
        let mut cut_for_size = false;
        let emit = |no: usize, line: &str, out: &mut String| -> bool {
            let line = line.strip_suffix('\n').unwrap_or(line);
            let line = line.strip_suffix('\r').unwrap_or(line);
            let line = cut_line(line, limits.line_chars);
            if out.len() + line.len() + 8 > limits.output_bytes {
                return false;
            }
            let _ = writeln!(out, "{no:>6}\t{line}");
            true
        };

        let total: Option<usize>;
        if size <= WHOLE_FILE {
            let bytes = std::mem::take(&mut head);
            let text = String::from_utf8_lossy(&bytes);
            let mut n = 0usize;
            for (i, line) in text.split_inclusive('\n').enumerate() {
                n = i + 1;
                if n < first || n >= end || cut_for_size {
                    continue;
                }
                if emit(n, line, &mut out) {
                    shown += 1;
                    last = n;
                } else {
                    cut_for_size = true;
                }
            }
            total = Some(n);
        } else {
            let mut reader = BufReader::new(std::io::Cursor::new(head).chain(file));
            let mut buf = Vec::new();
            let mut n = 0usize;
            loop {
                buf.clear();
                let got = reader
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| WorkspaceError::io(&r.rel, &e))?;
                if got == 0 {
                    break;
                }
                n += 1;
                if n < first {
                    continue;
                }
                if n >= end || cut_for_size {
                    break;
                }
                if emit(n, &String::from_utf8_lossy(&buf), &mut out) {
                    shown += 1;
                    last = n;
                } else {
                    cut_for_size = true;
                }
            }
            total = None;
        }

        if let Some(total) = total
            && first > total
        {
            return Ok(format!(
                "[`{}` has {total} lines; offset {first} is past its end]",
                r.rel
            ));
        }
        let complete = match total {
            Some(total) => first == 1 && last >= total,
            None => false,
        };
        if !complete {
            let of = match total {
                Some(t) => format!("of {t}"),
                None => format!("of a {size}-byte file (too large to count its lines)"),
            };
            let why = if cut_for_size {
                format!(" (output capped at {} bytes)", limits.output_bytes)
            } else {
                String::new()
            };
            if shown == 0 {
                let _ = writeln!(out, "[no lines shown{why}; read with a smaller limit]");
            } else if total.is_none_or(|t| last < t) {
                let _ = writeln!(
                    out,
                    "[showed lines {first}-{last} {of}{why}; read on with offset={}]",
                    last + 1
                );
            } else {
                let _ = writeln!(out, "[showed lines {first}-{last} {of}]");
            }
        }
        Ok(out)
    }

    /// Lists a directory: one entry a line, directories with a trailing `/`, sorted by name,
    /// `.gitignore`d entries and `.git` left out, down to `depth` levels (default 1; at most 5),
    /// at most [`super::Limits::entries`] entries.
    pub fn list_dir(&self, path: &str, depth: Option<usize>) -> Result<String, WorkspaceError> {
        let r = self.resolve_inner(path, false)?;
        let meta = std::fs::metadata(&r.full).map_err(|e| WorkspaceError::io(&r.rel, &e))?;
        if !meta.is_dir() {
            return Err(WorkspaceError::NotDirectory { path: r.rel });
        }
        let depth = depth.unwrap_or(1).clamp(1, 5);
        let mut walk = ignore::WalkBuilder::new(&r.full);
        walk.max_depth(Some(depth))
            .hidden(false)
            .require_git(false)
            .follow_links(false)
            .sort_by_file_name(|a, b| a.cmp(b))
            .filter_entry(|e| e.file_name() != ".git");
        let max = self.limits().entries;
        let mut lines = Vec::new();
        let mut more = 0usize;
        for entry in walk.build() {
            let Ok(entry) = entry else { continue };
            if entry.depth() == 0 {
                continue;
            }
            if lines.len() >= max {
                more += 1;
                continue;
            }
            let rel = entry.path().strip_prefix(&r.full).unwrap_or(entry.path());
            let mut s = super::display_rel(rel);
            if entry.file_type().is_some_and(|t| t.is_dir()) {
                s.push('/');
            } else if entry.path_is_symlink() {
                s.push('@');
            }
            lines.push(s);
        }
        let mut out = String::new();
        if lines.is_empty() {
            let _ = writeln!(out, "[`{}` is empty]", r.rel);
        }
        let max_bytes = self.limits().output_bytes;
        let mut shown = 0usize;
        for l in &lines {
            if out.len() + l.len() + 1 > max_bytes {
                break;
            }
            out.push_str(l);
            out.push('\n');
            shown += 1;
        }
        let more = more + (lines.len() - shown);
        if more > 0 {
            let _ = writeln!(
                out,
                "[{more} more entries not shown; list a subdirectory or use glob]"
            );
        }
        Ok(out)
    }
}

/// Reads until `buf` is full or the end of the file.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
