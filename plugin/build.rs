//! Bakes libtorch's library folder into every binary's rpath (binaries, tests, benches), so
//! nothing needs LD_LIBRARY_PATH. torch-sys exports the folder to direct dependents only.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(dir) => println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}"),
        Err(_) => println!(
            "cargo:warning=torch-sys did not report libtorch's folder; binaries will need LD_LIBRARY_PATH"
        ),
    }
}
