//! Links the addon for Node (napi-rs).

fn main() {
    napi_build::setup();
}
