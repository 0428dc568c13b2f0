//! Converts the bundled plugin manifests to JSON at build time, so that a
//! process reads a plugin major with `serde_json` instead of parsing its
//! YAML: the YAML of the catalogs is half a megabyte, and parsing one
//! provider's manifest took several milliseconds of every `donmaic check`
//! and editor start-up. The YAML stays the source; `registry.rs` keeps the
//! YAML path for a manifest this script could not convert (its problems are
//! then reported with positions), and a test holds the two paths equal.

#[path = "src/yaml_json.rs"]
#[allow(dead_code)]
mod yaml_json;

use std::fmt::Write as _;
use std::path::Path;

use donmai_grammar::codes::Code;

fn main() {
    let plugins = Path::new("plugins");
    println!("cargo:rerun-if-changed=plugins");
    println!("cargo:rerun-if-changed=src/yaml_json.rs");
    let mut names: Vec<String> = std::fs::read_dir(plugins)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut tables = String::new();
    let mut out = String::from(
        "/// `(plugin directory, document index, the document as JSON, its span\n\
         /// table)` for every bundled manifest document that converted cleanly\n\
         /// (see build.rs).\n\
         pub const BUNDLED_JSON: &[(&str, usize, &str, &[crate::yaml_json::StaticSpan])] = &[\n",
    );
    let mut count = 0;
    for name in names {
        let path = plugins.join(&name).join("plugin.yaml");
        println!("cargo:rerun-if-changed={}", path.display());
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let parsed = donmai_grammar::yaml::parse(&text);
        if parsed.diagnostics.iter().any(|d| d.is_error()) {
            continue;
        }
        for (index, document) in parsed.documents.iter().enumerate() {
            let (value, spans, problems) =
                yaml_json::document_to_json(document, Code::BAD_MANIFEST);
            if problems.iter().any(|d| d.is_error()) {
                continue;
            }
            let json = serde_json::to_string(&value).expect("a JSON value serializes");
            let _ = writeln!(
                tables,
                "const SPANS_{count}: &[crate::yaml_json::StaticSpan] = &["
            );
            let number = |n: usize| u32::try_from(n).expect("a manifest under 4 GiB");
            for (pointer, at) in spans.sorted() {
                let (key_start, key_end) = at
                    .key
                    .map_or((u32::MAX, u32::MAX), |k| (number(k.start), number(k.end)));
                let _ = writeln!(
                    tables,
                    "    ({pointer:?}, {}, {}, {key_start}, {key_end}),",
                    number(at.value.start),
                    number(at.value.end)
                );
            }
            tables.push_str("];\n");
            let _ = writeln!(out, "    ({name:?}, {index}, {json:?}, SPANS_{count}),");
            count += 1;
        }
    }
    out.push_str("];\n");
    out.push_str(&tables);
    let target = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("bundled_json.rs");
    std::fs::write(target, out).expect("write bundled_json.rs");
}
