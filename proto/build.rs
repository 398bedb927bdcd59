//! Compiles every `.proto` file under `renda/` into Rust with tonic-prost-build, using the
//! vendored `protoc` so the build works offline, and writes the file descriptor set that the
//! reflection service serves.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("renda");
    // tonic-prost-build emits no rerun trigger for .proto files; without this line an edit to a
    // .proto file would be silently ignored by an incremental build.
    println!("cargo:rerun-if-changed={}", root.display());

    let mut protos = Vec::new();
    collect_protos(root, &mut protos)?;
    protos.sort();

    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Handing protoc over through the prost config, rather than setting PROTOC, keeps the
    // process environment untouched (env::set_var is unsafe in edition 2024).
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("renda_descriptor.bin"))
        .compile_with_config(config, &protos, &[PathBuf::from(".")])?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
