//! Scratch generator (copied into a crate outside the workspace by gen_pb.sh): compiles a .proto
//! file with protox (no system protoc) and writes prost's Rust messages to an output directory.
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: onnxgen SCHEMA.proto OUT_DIR");
        std::process::exit(2);
    }
    let schema = Path::new(&args[1]);
    let include = schema.parent().unwrap_or(Path::new("."));
    let out = Path::new(&args[2]);
    std::fs::create_dir_all(out).expect("create output dir");
    let fds = protox::compile([schema], [include]).expect("compile schema with protox");
    prost_build::Config::new()
        .out_dir(out)
        .compile_fds(fds)
        .expect("generate prost code");
}
