//! Copies the model and the test vectors into `OUT_DIR`; the code is shared by the three examples (`../common/build_model.rs`).

include!("../common/build_model.rs");
