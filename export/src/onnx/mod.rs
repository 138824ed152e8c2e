//! Checkpoint -> self-describing ONNX model.
//!
//! The model (ONNX IR version [`IR_VERSION`], default-domain opset [`OPSET`]):
//!
//! - input `obs`: uint8 `[batch, 4, 84, 84]` (`batch` symbolic), frame stack channel-first,
//!   newest frame last;
//! - `Cast` to float, `Mul` by the scalar initializer `obs_scale` = 1/255;
//! - `Conv` 8x8/4, `Relu`, `Conv` 4x4/2, `Relu`, `Conv` 3x3/1, `Relu` (no padding),
//!   `Flatten(axis=1)`, `Gemm(transB=1)` to 512, `Relu`;
//! - PPO outputs `logits` f32 `[batch, A]` and `value` f32 `[batch, 1]`; DQN output
//!   `q_values` f32 `[batch, A]` (each a `Gemm(transB=1)`);
//! - every parameter is an initializer named as in the checkpoint, stored as little-endian
//!   f32 `raw_data`; initializers are not graph inputs;
//! - `metadata_props`: see [`metadata_props`], then the caller's extra pairs.

pub mod proto;

use std::path::Path;

use prost::Message;

use cartridge_contract::{key, onnx_key, tensor, OBS_SHAPE};

use crate::arch::{Algo, ACTOR, CONV_LAYERS, CRITIC, FC, Q_HEAD};
use crate::{write_atomic, Checkpoint, Error, Metadata, Result, Tensor};
use proto::tensor_shape_proto::{dimension, Dimension};
use proto::{
    data_type, type_proto, AttributeProto, AttributeType, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// ONNX IR version written (IR 8 = ONNX 1.10+; ONNX Runtimes older than 1.20 reject IR 10).
pub const IR_VERSION: i64 = 8;
/// Default-domain operator set version.
pub const OPSET: i64 = 17;
/// Graph input name.
pub const INPUT_NAME: &str = cartridge_contract::tensor::OBS;
/// Name of the 1/255 scale initializer.
pub const SCALE_NAME: &str = "obs_scale";
/// Symbolic batch dimension of input and outputs.
pub const BATCH_DIM: &str = "batch";
/// Prefix of every metadata key Cartridge writes.
pub const META_PREFIX: &str = cartridge_contract::ONNX_PREFIX;

/// The standard `metadata_props` of a model built from `meta`: the checkpoint's metadata
/// pairs ([`Metadata::pairs`], in that order) but `args`, each key under `cartridge.`
/// (`cartridge.format_version`, `algo`, `game`, `rom_md5`, `actions` (ALE ids, comma
/// separated), `arch`, `frame_skip`, `frame_stack`, `obs`, `global_step`, `seed`).
pub fn metadata_props(meta: &Metadata) -> Vec<(String, String)> {
    meta.pairs()
        .into_iter()
        .filter(|(k, _)| *k != key::ARGS)
        .map(|(k, v)| (onnx_key(k), v))
        .collect()
}

/// Builds the ONNX model for `ckpt` (see the module docs), with `extra_meta` appended to
/// the standard `metadata_props` (e.g. `cartridge.eval_episodes`,
/// `cartridge.eval_mean_return`).
///
/// # Errors
/// [`Checkpoint::validate`]'s errors; [`Error::InvalidInput`] for an empty extra key or a
/// key given twice (among the extras or clashing with a standard key).
pub fn build_model(ckpt: &Checkpoint, extra_meta: &[(String, String)]) -> Result<ModelProto> {
    ckpt.validate()?;
    let meta = &ckpt.meta;
    let mut props = metadata_props(meta);
    for (key, value) in extra_meta {
        if key.is_empty() {
            return Err(Error::InvalidInput(
                "empty ONNX metadata key; use KEY=VALUE with a non-empty KEY".to_owned(),
            ));
        }
        if props.iter().any(|(k, _)| k == key) {
            return Err(Error::InvalidInput(format!(
                "ONNX metadata key `{key}` given twice (the standard cartridge.* keys come from \
                 the checkpoint and cannot be overridden)"
            )));
        }
        props.push((key.clone(), value.clone()));
    }

    let n_actions = meta.n_actions();
    let mut graph = GraphBuilder::default();
    let x = graph.node(
        "Cast",
        "cast_obs",
        &[INPUT_NAME],
        vec![int("to", data_type::FLOAT.into())],
    );
    let mut x = graph.node("Mul", "scale_obs", &[&x, SCALE_NAME], vec![]);
    for (i, conv) in CONV_LAYERS.iter().enumerate() {
        let k = conv.kernel as i64;
        let s = conv.stride as i64;
        let attrs = vec![
            ints("kernel_shape", &[k, k]),
            ints("strides", &[s, s]),
            ints("pads", &[0, 0, 0, 0]),
            ints("dilations", &[1, 1]),
            int("group", 1),
        ];
        let y = graph.node(
            "Conv",
            &format!("conv{i}"),
            &[&x, conv.weight, conv.bias],
            attrs,
        );
        x = graph.node("Relu", &format!("relu{i}"), &[&y], vec![]);
    }
    let flat = graph.node("Flatten", "flatten", &[&x], vec![int("axis", 1)]);
    let fc = graph.gemm("fc", &flat, FC);
    let features = graph.node("Relu", "relu_fc", &[&fc], vec![]);
    let outputs: Vec<(String, usize)> = match meta.algo {
        Algo::Ppo => vec![
            (graph.gemm(tensor::LOGITS, &features, ACTOR), n_actions),
            (graph.gemm(tensor::VALUE, &features, CRITIC), 1),
        ],
        Algo::Dqn => vec![(graph.gemm(tensor::Q_VALUES, &features, Q_HEAD), n_actions)],
    };

    let scale = Tensor {
        shape: vec![],
        data: vec![1.0 / 255.0],
    };
    let mut initializer = vec![tensor_proto(SCALE_NAME, &scale)];
    for spec in crate::arch::param_specs(meta.algo, n_actions) {
        // `validate` above guarantees presence.
        if let Some(t) = ckpt.tensors.get(spec.name) {
            initializer.push(tensor_proto(spec.name, t));
        }
    }

    let [stack, height, width] = OBS_SHAPE;
    let input_dims = [
        None,
        Some(stack as i64),
        Some(height as i64),
        Some(width as i64),
    ];
    let graph = GraphProto {
        node: graph.nodes,
        name: Some(format!("cartridge_{}_{}", meta.arch, meta.algo)),
        initializer,
        doc_string: None,
        input: vec![value_info(INPUT_NAME, data_type::UINT8, &input_dims)],
        output: outputs
            .iter()
            .map(|(name, width)| value_info(name, data_type::FLOAT, &[None, Some(*width as i64)]))
            .collect(),
        value_info: vec![],
    };
    let outputs_doc: Vec<String> = outputs
        .iter()
        .map(|(name, width)| format!("{name} f32 [batch, {width}]"))
        .collect();
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("cartridge".to_owned()),
        producer_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        domain: None,
        model_version: None,
        doc_string: Some(format!(
            "Cartridge {} policy for Atari {} (Nature CNN). Input {INPUT_NAME} u8 [batch, \
             {stack}, {height}, {width}] ({stack} stacked {height}x{width} gray frames, newest \
             last); outputs {}; output i means ALE action actions[i] with actions = {}.",
            meta.algo.as_str().to_uppercase(),
            meta.game,
            outputs_doc.join(", "),
            meta.actions_string()
        )),
        graph: Some(graph),
        metadata_props: props
            .into_iter()
            .map(|(key, value)| StringStringEntryProto {
                key: Some(key),
                value: Some(value),
            })
            .collect(),
    })
}

/// The serialised ONNX model for `ckpt` ([`build_model`]).
///
/// # Errors
/// As [`build_model`].
pub fn to_onnx(ckpt: &Checkpoint, extra_meta: &[(String, String)]) -> Result<Vec<u8>> {
    Ok(build_model(ckpt, extra_meta)?.encode_to_vec())
}

/// Writes the ONNX model for `ckpt` to `path` atomically ([`write_atomic`]); on error `path`
/// is untouched.
///
/// # Errors
/// As [`build_model`] and [`write_atomic`].
pub fn write_onnx(
    ckpt: &Checkpoint,
    extra_meta: &[(String, String)],
    path: impl AsRef<Path>,
) -> Result<()> {
    write_atomic(path, &to_onnx(ckpt, extra_meta)?)
}

/// Decodes serialised ONNX bytes (any ONNX model, not only Cartridge's; unknown fields are
/// skipped).
///
/// # Errors
/// [`Error::NotOnnx`] when the bytes are not a protobuf `ModelProto` or have no graph.
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto> {
    let model = ModelProto::decode(bytes).map_err(|e| Error::NotOnnx(e.to_string()))?;
    if model.graph.is_none() {
        return Err(Error::NotOnnx("the model has no graph".to_owned()));
    }
    Ok(model)
}

/// The `metadata_props` of serialised ONNX bytes, in file order (an absent key or value
/// reads as empty).
///
/// # Errors
/// As [`decode_model`].
pub fn read_metadata_props(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    Ok(decode_model(bytes)?
        .metadata_props
        .into_iter()
        .map(|e| (e.key.unwrap_or_default(), e.value.unwrap_or_default()))
        .collect())
}

/// Accumulates nodes; each node has one output named after the node.
#[derive(Default)]
struct GraphBuilder {
    nodes: Vec<NodeProto>,
}

impl GraphBuilder {
    /// Appends `op_type(inputs)` named `name` with output `name`; returns the output name.
    fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![name.to_owned()],
            name: Some(name.to_owned()),
            op_type: Some(op_type.to_owned()),
            domain: None,
            attribute,
            doc_string: None,
        });
        name.to_owned()
    }

    /// `Gemm(x, weight, bias, transB=1)`: a PyTorch Linear with `[out, in]` weights.
    fn gemm(&mut self, name: &str, x: &str, (weight, bias): (&str, &str)) -> String {
        self.node("Gemm", name, &[x, weight, bias], vec![int("transB", 1)])
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn tensor_proto(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        dims: t.shape.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type::FLOAT),
        name: Some(name.to_owned()),
        doc_string: None,
        raw_data: Some(t.to_le_bytes()),
    }
}

/// A tensor value; `None` dims are the symbolic [`BATCH_DIM`].
fn value_info(name: &str, elem_type: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam(BATCH_DIM.to_owned()),
            }),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem_type),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        doc_string: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(algo: Algo) -> Checkpoint {
        let mut meta = Metadata::new(
            algo,
            "breakout",
            "f34f08e5eb96e500e851a80be3277a56",
            vec![0, 1, 3, 4],
        );
        meta.global_step = 1000;
        meta.seed = 3;
        meta.validate().expect("valid metadata");
        let tensors = crate::arch::test_tensors(algo, 4, 3);
        Checkpoint { meta, tensors }
    }

    fn dims(v: &ValueInfoProto) -> (Option<i32>, Vec<dimension::Value>) {
        match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) => (
                t.elem_type,
                t.shape
                    .as_ref()
                    .map(|s| s.dim.iter().filter_map(|d| d.value.clone()).collect())
                    .unwrap_or_default(),
            ),
            None => (None, vec![]),
        }
    }

    #[test]
    fn model_decodes_with_the_contracted_interface() {
        for algo in [Algo::Ppo, Algo::Dqn] {
            let ckpt = sample(algo);
            let extra = [("cartridge.eval_episodes".to_owned(), "30".to_owned())];
            let bytes = to_onnx(&ckpt, &extra).expect("export");
            let model = decode_model(&bytes).expect("decode");
            assert!(model.ir_version.expect("ir") <= 9);
            assert_eq!(model.opset_import.len(), 1);
            assert_eq!(model.opset_import[0].domain.as_deref(), Some(""));
            assert_eq!(model.opset_import[0].version, Some(17));
            assert_eq!(model.producer_name.as_deref(), Some("cartridge"));
            let graph = model.graph.expect("graph");

            assert_eq!(graph.input.len(), 1);
            assert_eq!(graph.input[0].name.as_deref(), Some("obs"));
            let (elem, d) = dims(&graph.input[0]);
            assert_eq!(elem, Some(data_type::UINT8));
            assert_eq!(
                d,
                [
                    dimension::Value::DimParam("batch".to_owned()),
                    dimension::Value::DimValue(4),
                    dimension::Value::DimValue(84),
                    dimension::Value::DimValue(84)
                ]
            );

            let names: Vec<_> = graph
                .output
                .iter()
                .filter_map(|o| o.name.as_deref())
                .collect();
            assert_eq!(names, algo.output_names());
            for out in &graph.output {
                let (elem, d) = dims(out);
                assert_eq!(elem, Some(data_type::FLOAT));
                let width = if out.name.as_deref() == Some("value") {
                    1
                } else {
                    4
                };
                assert_eq!(d[1], dimension::Value::DimValue(width));
            }

            // Every parameter is an initializer with its checkpoint bytes.
            for (name, t) in &ckpt.tensors {
                let init = graph
                    .initializer
                    .iter()
                    .find(|i| i.name.as_deref() == Some(name))
                    .expect(name);
                assert_eq!(init.raw_data.as_deref(), Some(t.to_le_bytes().as_slice()));
                let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
                assert_eq!(init.dims, shape);
            }
            assert_eq!(graph.initializer.len(), ckpt.tensors.len() + 1);
            let ops: Vec<_> = graph
                .node
                .iter()
                .filter_map(|n| n.op_type.as_deref())
                .collect();
            assert_eq!(
                &ops[..9],
                ["Cast", "Mul", "Conv", "Relu", "Conv", "Relu", "Conv", "Relu", "Flatten"]
            );

            let props = read_metadata_props(&bytes).expect("props");
            let get = |k: &str| {
                props
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(get("cartridge.algo"), Some(algo.as_str()));
            assert_eq!(get("cartridge.game"), Some("breakout"));
            assert_eq!(
                get("cartridge.rom_md5"),
                Some("f34f08e5eb96e500e851a80be3277a56")
            );
            assert_eq!(get("cartridge.actions"), Some("0,1,3,4"));
            assert_eq!(get("cartridge.frame_skip"), Some("4"));
            assert_eq!(get("cartridge.frame_stack"), Some("4"));
            assert_eq!(get("cartridge.obs"), Some("gray84x84"));
            assert_eq!(get("cartridge.global_step"), Some("1000"));
            assert_eq!(get("cartridge.arch"), Some("nature_cnn"));
            assert_eq!(get("cartridge.seed"), Some("3"));
            assert_eq!(get("cartridge.format_version"), Some("1"));
            assert_eq!(
                props.last().map(|(k, _)| k.as_str()),
                Some("cartridge.eval_episodes")
            );
        }
    }

    #[test]
    fn extra_metadata_cannot_clash() {
        let ckpt = sample(Algo::Dqn);
        let clash = [("cartridge.game".to_owned(), "pong".to_owned())];
        assert!(to_onnx(&ckpt, &clash).is_err());
        let twice = [
            ("k".to_owned(), "1".to_owned()),
            ("k".to_owned(), "2".to_owned()),
        ];
        assert!(to_onnx(&ckpt, &twice).is_err());
        let empty = [(String::new(), "1".to_owned())];
        assert!(to_onnx(&ckpt, &empty).is_err());
    }

    #[test]
    fn invalid_checkpoint_is_refused_and_nothing_written() {
        let mut ckpt = sample(Algo::Ppo);
        ckpt.tensors.remove("actor.bias");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.onnx");
        let err = write_onnx(&ckpt, &[], &path).expect_err("invalid");
        assert!(err.to_string().contains("actor.bias"), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn garbage_is_not_onnx() {
        assert!(read_metadata_props(b"\xff\xff\xff\xff garbage").is_err());
        assert!(read_metadata_props(b"").is_err());
    }
}
