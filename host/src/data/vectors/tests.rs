use super::*;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("x{i}")).collect()
}

/// A scratch directory that is removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir() -> Dir {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("tickq-vectors-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

fn npy(path: &Path, shape: &[usize], values: &[f32]) {
    std::fs::write(path, npy::to_bytes_f32(shape, values)).unwrap();
}

#[test]
fn channels_first_arrays_are_transposed_to_time_major_rows() {
    let d = dir();
    let path = d.path().join("x.npy");
    // Two samples of [C, T] = [2, 3]: channel c, step t holds 10 c + t (+ 100 for the second sample).
    let values: Vec<f32> = (0..2)
        .flat_map(|n| (0..2).flat_map(move |c| (0..3).map(move |t| (100 * n + 10 * c + t) as f32)))
        .collect();
    npy(&path, &[2, 2, 3], &values);
    let names = names(2);
    let shape = InputShape {
        time_steps: 3,
        features: 2,
        layout: InputLayout::ChannelsFirst,
        names: &names,
        classes: 3,
    };
    let set = read_inputs(&path, None, &shape).unwrap();
    assert_eq!(
        set.x.row(1).to_vec(),
        vec![100.0, 110.0, 101.0, 111.0, 102.0, 112.0]
    );
    // The same values flat per sample ([N, C*T], channel-major) read the same.
    npy(&path, &[2, 6], &values);
    assert_eq!(read_inputs(&path, None, &shape).unwrap().x, set.x);
    // Read as time-major, the [N, 2, 3] array is the other layout's shape: refused, not misread.
    npy(&path, &[2, 2, 3], &values);
    let e = read_inputs(
        &path,
        None,
        &InputShape {
            layout: InputLayout::TimeMajor,
            ..shape
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: shape [2, 2, 3] does not fit the model's input: the samples are [2, 3], the channels-first shape, \
             but the model's layout is time-major [T, F] = [3, 2]: transpose the array, or import the model \
             with --layout channels-first",
            path.display()
        )
    );
}

#[test]
fn bad_arrays_are_refused_naming_the_row_and_column() {
    let d = dir();
    let path = d.path().join("x.npy");
    let names = names(4);
    let shape = InputShape {
        time_steps: 1,
        features: 4,
        layout: InputLayout::TimeMajor,
        names: &names,
        classes: 3,
    };
    npy(&path, &[2, 5], &[0.0; 10]);
    let e = read_inputs(&path, None, &shape).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: 5 input columns, but the model takes 4 inputs (one row of [T, F] = [1, 4], time-major layout)",
            path.display()
        )
    );
    let mut v = vec![0.0; 8];
    v[6] = f32::NAN;
    npy(&path, &[2, 4], &v);
    let e = read_inputs(&path, None, &shape).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: row 1, column 2 (x2): NaN is not a finite number",
            path.display()
        )
    );
    npy(&path, &[8], &[0.0; 8]);
    let e = read_inputs(&path, None, &shape).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("input arrays are [N, 4] or [N, 1, 4] (time-major layout), not rank 1"),
        "{e}"
    );
    let e = read_inputs(&d.path().join("x.txt"), None, &shape).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "unknown input format: the name must end in .npy, .safetensors, .csv or .parquet"
        ),
        "{e}"
    );
}

#[test]
fn csv_columns_match_by_name_and_labels_are_checked() {
    let d = dir();
    let path = d.path().join("x.csv");
    let names = names(3);
    let shape = InputShape {
        time_steps: 1,
        features: 3,
        layout: InputLayout::TimeMajor,
        names: &names,
        classes: 3,
    };
    std::fs::write(&path, "x2,label,x0,x1\n3,2,1,2\n6,0,4,5\n").unwrap();
    let set = read_inputs(&path, None, &shape).unwrap();
    assert_eq!(set.x.row(0).to_vec(), vec![1.0, 2.0, 3.0]);
    assert_eq!(set.labels, Some(vec![2, 0]));
    assert!(set.notes.is_empty());
    std::fs::write(&path, "a,b,c\n1,2,3\n").unwrap();
    let set = read_inputs(&path, None, &shape).unwrap();
    assert_eq!(set.x.row(0).to_vec(), vec![1.0, 2.0, 3.0]);
    assert_eq!(set.notes.len(), 1, "{:?}", set.notes);
    std::fs::write(&path, "x0,x1,x2,label\n1,2,3,3\n").unwrap();
    let e = read_inputs(&path, None, &shape).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: row 0: label 3 is out of range: the model has 3 classes (0 to 2)",
            path.display()
        )
    );
    std::fs::write(&path, "x0,x1,x2\n1,2,3\n4,oops,6\n").unwrap();
    let e = read_inputs(&path, None, &shape).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}, line 3, column `x1`: `oops` is not a number",
            path.display()
        )
    );
    std::fs::write(&path, "x0,x1,x2\n1,inf,3\n").unwrap();
    let e = read_inputs(&path, None, &shape).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: row 0, column 1 (x1): inf is not a finite number",
            path.display()
        )
    );
    std::fs::write(&path, "x0,x1\n1,2\n").unwrap();
    let e = read_inputs(&path, None, &shape).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: 2 input columns, but the model takes 3 inputs",
            path.display()
        )
    );
}

#[test]
fn safetensors_tensors_are_chosen_by_name_and_dtype_checked() {
    use safetensors::tensor::{Dtype, TensorView};
    let d = dir();
    let path = d.path().join("x.safetensors");
    let x: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let y: Vec<u8> = [1i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensors = vec![
        (
            "inputs",
            TensorView::new(Dtype::F32, vec![2, 2], &x).unwrap(),
        ),
        ("labels", TensorView::new(Dtype::I64, vec![2], &y).unwrap()),
    ];
    safetensors::serialize_to_file(tensors, None, &path).unwrap();
    let names = names(2);
    let shape = InputShape {
        time_steps: 1,
        features: 2,
        layout: InputLayout::TimeMajor,
        names: &names,
        classes: 3,
    };
    let set = read_inputs(&path, None, &shape).unwrap();
    assert_eq!(set.x.row(1).to_vec(), vec![3.0, 4.0]);
    assert_eq!(read_labels(&path, None, 3).unwrap(), vec![1, 2]);
    let e = read_labels(&path, None, 2).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("row 1: label 2 is out of range: the model has 2 classes (0 to 1)"),
        "{e}"
    );
    let e = read_inputs(&path, Some("labels"), &shape).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the array has dtype I64; inputs and logits must be float32 or float64",
            path.display()
        )
    );
    let e = read_inputs(&path, Some("w"), &shape).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: no tensor named `w`; tensors in the file: inputs, labels",
            path.display()
        )
    );
}

#[test]
fn selections_and_references() {
    let d = dir();
    let path = d.path().join("r.npy");
    npy(&path, &[2, 3], &[0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
    assert_eq!(read_reference(&path, None, 3).unwrap()[[1, 2]], 3.0);
    let e = read_reference(&path, None, 4).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("3 input columns, but the model takes 4 inputs (one logit per class)"),
        "{e}"
    );
    let set = VectorSet {
        path: path.clone(),
        x: Array2::zeros((4, 2)),
        labels: Some(vec![0, 1, 2, 0]),
        notes: Vec::new(),
    };
    assert_eq!(select_rows(&set, 1, 3).unwrap().labels, Some(vec![1, 2]));
    let e = select_rows(&set, 2, 9).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: rows 2..9 asked for, but the file has 4 rows",
            path.display()
        )
    );
}

/// A Parquet file of DOUBLE columns `x1, x0, label` (and a text column when `with_text`).
fn write_parquet(path: &Path, rows: &[[f64; 3]], with_text: bool) {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;
    let text = if with_text {
        " REQUIRED BYTE_ARRAY note (UTF8);"
    } else {
        ""
    };
    let schema = format!(
        "message v {{ REQUIRED DOUBLE x1; REQUIRED DOUBLE x0; REQUIRED DOUBLE label;{text} }}"
    );
    let schema = Arc::new(parse_message_type(&schema).unwrap());
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut k = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        if k < 3 {
            let v: Vec<f64> = rows.iter().map(|r| r[k]).collect();
            column
                .typed::<DoubleType>()
                .write_batch(&v, None, None)
                .unwrap();
        } else {
            let v: Vec<ByteArray> = rows.iter().map(|_| ByteArray::from("n")).collect();
            column
                .typed::<ByteArrayType>()
                .write_batch(&v, None, None)
                .unwrap();
        }
        column.close().unwrap();
        k += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_columns_by_name_with_labels() {
    let d = dir();
    let path = d.path().join("v.parquet");
    write_parquet(&path, &[[2.0, 1.0, 0.0], [4.0, 3.0, 1.0]], false);
    let names = names(2);
    let shape = InputShape {
        time_steps: 1,
        features: 2,
        layout: InputLayout::TimeMajor,
        names: &names,
        classes: 2,
    };
    let set = read_inputs(&path, None, &shape).unwrap();
    assert_eq!(set.x.row(1).to_vec(), vec![3.0, 4.0]);
    assert_eq!(set.labels, Some(vec![0, 1]));
    assert_eq!(read_header_names(&path).unwrap(), vec!["x1", "x0"]);
    write_parquet(&path, &[[2.0, 1.0, 0.0]], true);
    let e = read_inputs(&path, None, &shape).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: column `note` has dtype BYTE_ARRAY; every column must be INT32, INT64, FLOAT or DOUBLE",
            path.display()
        )
    );
}
