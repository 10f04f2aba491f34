#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Project instructions (AGENTS.md, CLAUDE.md) collected into a system-prompt section.

use std::fs;

use miyabi_code::Workspace;
use miyabi_code::instructions::Instructions;

#[test]
fn collects_root_and_subdirectory_files_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    fs::create_dir_all(p.join("core/src")).unwrap();
    fs::create_dir_all(p.join("web")).unwrap();
    fs::create_dir_all(p.join("node_modules/pkg")).unwrap();
    fs::create_dir_all(p.join("build")).unwrap();
    fs::write(p.join(".gitignore"), "build/\n").unwrap();
    fs::write(p.join("CLAUDE.md"), "Root claude.\n").unwrap();
    fs::write(p.join("AGENTS.md"), "Root agents.\n").unwrap();
    fs::write(p.join("core/AGENTS.md"), "Core: no unwrap.\n").unwrap();
    fs::write(p.join("web/CLAUDE.md"), "Web: use pnpm.\n").unwrap();
    fs::write(p.join("node_modules/pkg/AGENTS.md"), "vendored\n").unwrap();
    fs::write(p.join("build/AGENTS.md"), "ignored\n").unwrap();
    fs::write(p.join("core/src/agents.md"), "wrong case\n").unwrap();

    let found = Instructions::collect(&Workspace::new(p).unwrap()).unwrap();
    let paths: Vec<&str> = found.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["AGENTS.md", "CLAUDE.md", "core/AGENTS.md", "web/CLAUDE.md"]
    );
    assert_eq!(
        found.system_prompt(),
        "# Project instructions\n\nThe repository's instruction files follow. Instructions in a subdirectory's file \
         apply to work under that directory and take precedence over the root's where they differ.\n\
         \n## AGENTS.md (the whole repository)\n\nRoot agents.\n\
         \n## CLAUDE.md (the whole repository)\n\nRoot claude.\n\
         \n## core/AGENTS.md (files under core/)\n\nCore: no unwrap.\n\
         \n## web/CLAUDE.md (files under web/)\n\nWeb: use pnpm.\n"
    );
    let applying: Vec<&str> = found
        .for_path("core/src/lib.rs")
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(applying, ["AGENTS.md", "CLAUDE.md", "core/AGENTS.md"]);
    let applying: Vec<&str> = found
        .for_path("corex/a.rs")
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(applying, ["AGENTS.md", "CLAUDE.md"]);
}

#[test]
fn large_files_are_cut_and_no_files_give_no_section() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    let none = Instructions::collect(&ws).unwrap();
    assert!(none.is_empty());
    assert_eq!(none.system_prompt(), "");
    fs::write(dir.path().join("AGENTS.md"), "x".repeat(40_000)).unwrap();
    let found = Instructions::collect(&ws).unwrap();
    assert_eq!(
        found.files[0].text.len(),
        32 * 1024 + "\n[… cut: 7232 more bytes in AGENTS.md; read it with read_file]".len()
    );
    assert!(
        found.files[0]
            .text
            .ends_with("[… cut: 7232 more bytes in AGENTS.md; read it with read_file]")
    );
}
