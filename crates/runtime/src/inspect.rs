//! Describing a file without running it: what `lamina inspect` prints.
//!
//! Uses only the parser, so it works in the runtime-only build too.

use lamina_types::ModuleHash;
use serde::Serialize;
use wasmparser::{Parser, Payload};

use crate::Error;
#[cfg(test)]
use crate::LoadError;
use crate::artifact::{self, ArtifactHeader};

/// One import or export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `module::name` for core imports, the name otherwise.
    pub name: String,
    /// `func`, `memory`, `table`, `global`, `tag`, `instance`, `type`, `component`, …
    pub kind: String,
}

/// What a file is.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Description {
    /// A core module.
    Module {
        /// Its SHA-256.
        module_hash: ModuleHash,
        /// Its imports.
        imports: Vec<Item>,
        /// Its exports.
        exports: Vec<Item>,
    },
    /// A component.
    Component {
        /// Its SHA-256.
        module_hash: ModuleHash,
        /// Its top-level imports.
        imports: Vec<Item>,
        /// Its top-level exports.
        exports: Vec<Item>,
    },
    /// A Lamina artifact.
    Artifact(ArtifactHeader),
}

/// Describes a `.wasm` (module or component) or a Lamina artifact.
///
/// # Errors
/// [`LoadError`] (not Wasm, truncated, invalid) or [`ArtifactError`](crate::ArtifactError).
pub fn describe(bytes: &[u8]) -> Result<Description, Error> {
    if artifact::is_artifact(bytes) {
        return Ok(Description::Artifact(artifact::decode_header(bytes)?));
    }
    lamina_artifact::compile::check_magic(bytes)?;
    let module_hash = ModuleHash::of(bytes);
    let component = Parser::is_component(bytes);
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| lamina_artifact::compile::parse_error(bytes, &e))?;
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ImportSection(reader) if depth == 1 => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| lamina_artifact::compile::parse_error(bytes, &e))?;
                    imports.push(Item {
                        name: format!("{}::{}", import.module, import.name),
                        kind: type_ref_kind(&import.ty).into(),
                    });
                }
            }
            Payload::ExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| lamina_artifact::compile::parse_error(bytes, &e))?;
                    exports.push(Item { name: export.name.into(), kind: format!("{:?}", export.kind).to_lowercase() });
                }
            }
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| lamina_artifact::compile::parse_error(bytes, &e))?;
                    imports.push(Item { name: import.name.name.into(), kind: component_ref_kind(&import.ty).into() });
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| lamina_artifact::compile::parse_error(bytes, &e))?;
                    exports.push(Item {
                        name: export.name.name.into(),
                        kind: format!("{:?}", export.kind).to_lowercase(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(if component {
        Description::Component { module_hash, imports, exports }
    } else {
        Description::Module { module_hash, imports, exports }
    })
}

fn type_ref_kind(ty: &wasmparser::TypeRef) -> &'static str {
    match ty {
        wasmparser::TypeRef::Func(_) | wasmparser::TypeRef::FuncExact(_) => "func",
        wasmparser::TypeRef::Table(_) => "table",
        wasmparser::TypeRef::Memory(_) => "memory",
        wasmparser::TypeRef::Global(_) => "global",
        wasmparser::TypeRef::Tag(_) => "tag",
    }
}

fn component_ref_kind(ty: &wasmparser::ComponentTypeRef) -> &'static str {
    match ty {
        wasmparser::ComponentTypeRef::Module(_) => "module",
        wasmparser::ComponentTypeRef::Func(_) => "func",
        wasmparser::ComponentTypeRef::Value(_) => "value",
        wasmparser::ComponentTypeRef::Type(_) => "type",
        wasmparser::ComponentTypeRef::Instance(_) => "instance",
        wasmparser::ComponentTypeRef::Component(_) => "component",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_module_imports_and_exports() {
        let wasm =
            wat::parse_str(r#"(module (import "env" "f" (func)) (memory (export "memory") 1) (func (export "run")))"#)
                .expect("valid wat");
        let Description::Module { imports, exports, .. } = describe(&wasm).expect("describes") else {
            panic!("a core module is described as a module")
        };
        assert_eq!(imports, vec![Item { name: "env::f".into(), kind: "func".into() }]);
        assert_eq!(exports.len(), 2);
        assert!(exports.iter().any(|e| e.name == "run" && e.kind == "func"));
    }

    #[test]
    fn rejects_non_wasm() {
        assert!(matches!(
            describe(b"hello world"),
            Err(Error::Load(LoadError::Input(lamina_artifact::CompileError::NotWasm { .. })))
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut bytes = b"\0asm\x01\0\0\0".to_vec();
            bytes.extend_from_slice(&tail);
            let _ = describe(&bytes);
        }
    }
}
