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
//!
//! The CNN-LSTM PPO policy (`arch` `nature_cnn_lstm`, CleanRL `ppo_atari_lstm.py`) differs:
//!
//! - inputs `obs` uint8 `[batch, 1, 84, 84]` (one frame), `h` and `c` f32 `[1, batch, 128]`
//!   (the LSTM state before this step; the model never zeroes it: the caller passes zeros
//!   where an episode starts, as CleanRL's `get_states` multiplies the state by `1 - done`);
//! - after the trunk's 512 features, `Unsqueeze` to `[1, batch, 512]`, one step of ONNX's
//!   `LSTM` operator (one direction, default activations sigmoid / tanh / tanh) from
//!   `initial_h = h`, `initial_c = c`, whose `Y_h` and `Y_c` are the outputs `h_out` and
//!   `c_out`; the heads read `Squeeze(h_out)` (`[batch, 128]`);
//! - outputs `logits` f32 `[batch, A]`, `value` f32 `[batch, 1]`, `h_out` and `c_out` f32
//!   `[1, batch, 128]` (the next step's `h` and `c`);
//! - the LSTM's parameters are the operator's initializers [`LSTM_W_NAME`], [`LSTM_R_NAME`],
//!   [`LSTM_B_NAME`]: PyTorch's `lstm.*` tensors with their 128-row gate blocks reordered from
//!   PyTorch's `i, f, g, o` to ONNX's `i, o, f, c` ([`ONNX_GATE_ORDER`]); every other
//!   parameter is stored as in the checkpoint; `metadata_props` add `cartridge.recurrent`,
//!   `state_inputs`, `state_outputs`, `hidden_size`.
//!
//! The operator was measured against the same step written in basic operators (`Gemm` x2,
//! `Add`, `Split`, `Sigmoid` x3, `Tanh` x2, `Mul` x3) on PyTorch's parameters, with ONNX
//! Runtime 1.31.1, batch 1, one thread, on this project's 2-core VM: the LSTM and heads alone
//! 29.7 against 32.0 µs per call, the whole model 383 against 382 µs (the convolutions
//! dominate); both matched PyTorch's `nn.LSTM` within 5e-7. The operator is kept.

pub mod proto;

use std::path::Path;

use prost::Message;

use cartridge_contract::{key, onnx_key, tensor, FRAME_HEIGHT, FRAME_WIDTH};

use crate::arch::{
    Algo, ACTOR, CONV_LAYERS, CRITIC, FC, GATES, LSTM_B_HH, LSTM_B_IH, LSTM_W_HH, LSTM_W_IH,
    ONNX_GATE_ORDER, Q_HEAD,
};
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
/// Name of the int64 `[0]` initializer: the axes of the `Squeeze` / `Unsqueeze` nodes around
/// the LSTM step (the state's leading `num_directions` axis).
pub const AXES_0_NAME: &str = "axes_0";
/// ONNX `LSTM` operator input `W` `[1, 4 H, 512]`: `lstm.weight_ih_l0`, gates reordered to
/// ONNX's `i, o, f, c`.
pub const LSTM_W_NAME: &str = "lstm.W";
/// ONNX `LSTM` operator input `R` `[1, 4 H, H]`: `lstm.weight_hh_l0`, gates reordered.
pub const LSTM_R_NAME: &str = "lstm.R";
/// ONNX `LSTM` operator input `B` `[1, 8 H]`: `lstm.bias_ih_l0` then `lstm.bias_hh_l0`, each
/// with its gates reordered.
pub const LSTM_B_NAME: &str = "lstm.B";

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
    let arch = meta.network()?;
    let policy = arch.policy();
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
    let mut features = graph.node("Relu", "relu_fc", &[&fc], vec![]);

    let scale = Tensor {
        shape: vec![],
        data: vec![1.0 / 255.0],
    };
    let mut initializer = vec![tensor_proto(SCALE_NAME, &scale)];
    // The LSTM's tensors go in reordered, below.
    let lstm_params = [LSTM_W_IH, LSTM_W_HH, LSTM_B_IH, LSTM_B_HH];
    for spec in crate::arch::param_specs(arch, n_actions) {
        // `validate` above guarantees presence.
        if let Some(t) = ckpt.tensors.get(spec.name) {
            if !lstm_params.contains(&spec.name) {
                initializer.push(tensor_proto(spec.name, t));
            }
        }
    }

    // Graph outputs (name, dims; `None` is the batch) after the heads.
    let mut state_outputs: Vec<(String, Vec<Option<i64>>)> = Vec::new();
    let mut state_inputs: Vec<ValueInfoProto> = Vec::new();
    if let Some(hidden) = policy.hidden_size() {
        let state_dims = [Some(1), None, Some(hidden as i64)];
        for name in tensor::STATE_INPUTS {
            state_inputs.push(value_info(name, data_type::FLOAT, &state_dims));
        }
        for name in tensor::STATE_OUTPUTS {
            state_outputs.push((name.to_owned(), state_dims.to_vec()));
        }
        initializer.push(int64_tensor_proto(AXES_0_NAME, &[0]));
        for (name, t) in lstm_operator_params(ckpt, hidden) {
            initializer.push(tensor_proto(name, &t));
        }
        features = graph.lstm(&features, hidden);
    }
    let outputs: Vec<(String, usize)> = match meta.algo {
        Algo::Ppo => vec![
            (graph.gemm(tensor::LOGITS, &features, ACTOR), n_actions),
            (graph.gemm(tensor::VALUE, &features, CRITIC), 1),
        ],
        Algo::Dqn => vec![(graph.gemm(tensor::Q_VALUES, &features, Q_HEAD), n_actions)],
    };

    let (stack, height, width) = (policy.frame_stack(), FRAME_HEIGHT, FRAME_WIDTH);
    let input_dims = [
        None,
        Some(stack as i64),
        Some(height as i64),
        Some(width as i64),
    ];
    let mut input = vec![value_info(INPUT_NAME, data_type::UINT8, &input_dims)];
    input.extend(state_inputs);
    let mut output: Vec<ValueInfoProto> = outputs
        .iter()
        .map(|(name, width)| value_info(name, data_type::FLOAT, &[None, Some(*width as i64)]))
        .collect();
    output.extend(
        state_outputs
            .iter()
            .map(|(name, dims)| value_info(name, data_type::FLOAT, dims)),
    );
    let graph = GraphProto {
        node: graph.nodes,
        name: Some(format!("cartridge_{}_{}", meta.arch, meta.algo)),
        initializer,
        doc_string: None,
        input,
        output,
        value_info: vec![],
    };
    let outputs_doc: Vec<String> = outputs
        .iter()
        .map(|(name, width)| format!("{name} f32 [batch, {width}]"))
        .collect();
    let (net_doc, state_doc) = match policy.hidden_size() {
        None => ("Nature CNN", String::new()),
        Some(hidden) => (
            "Nature CNN + LSTM",
            format!(
                " Recurrent: inputs h, c f32 [1, batch, {hidden}] (the LSTM state; pass zeros \
                 where an episode starts), outputs h_out, c_out f32 [1, batch, {hidden}] (the \
                 next step's h, c)."
            ),
        ),
    };
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
            "Cartridge {} policy for Atari {} ({net_doc}). Input {INPUT_NAME} u8 [batch, \
             {stack}, {height}, {width}] ({stack} stacked {height}x{width} gray frames, newest \
             last); outputs {}; output i means ALE action actions[i] with actions = {}.\
             {state_doc}",
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

/// The ONNX `LSTM` operator's `W`, `R`, `B` from the checkpoint's PyTorch parameters: each
/// `[4 H, ...]` matrix with its gate blocks reordered to ONNX's `i, o, f, c`
/// ([`ONNX_GATE_ORDER`]) under a leading `num_directions` axis of 1, and `B` the reordered
/// `bias_ih` followed by the reordered `bias_hh` (ONNX spec: `B = [Wb, Rb]`, `[1, 8 H]`).
fn lstm_operator_params(ckpt: &Checkpoint, hidden: usize) -> [(&'static str, Tensor); 3] {
    let get = |name: &str| ckpt.tensors.get(name).map_or(&[][..], |t| &t.data[..]);
    let w = onnx_gate_order(get(LSTM_W_IH), hidden);
    let r = onnx_gate_order(get(LSTM_W_HH), hidden);
    let mut b = onnx_gate_order(get(LSTM_B_IH), hidden);
    b.extend(onnx_gate_order(get(LSTM_B_HH), hidden));
    let gates = GATES * hidden;
    let with_shape = |data: Vec<f32>, cols: usize| Tensor {
        shape: vec![1, gates, cols],
        data,
    };
    let (w_cols, r_cols) = (w.len() / gates, r.len() / gates);
    [
        (LSTM_W_NAME, with_shape(w, w_cols)),
        (LSTM_R_NAME, with_shape(r, r_cols)),
        (
            LSTM_B_NAME,
            Tensor {
                shape: vec![1, 2 * gates],
                data: b,
            },
        ),
    ]
}

/// `data`, `[4 hidden, cols]` row-major in PyTorch's gate order `i, f, g, o`, with its
/// `hidden`-row blocks in ONNX's order `i, o, f, c`.
pub fn onnx_gate_order(data: &[f32], hidden: usize) -> Vec<f32> {
    let block = data.len() / GATES;
    debug_assert_eq!(block % hidden, 0, "blocks of {hidden} rows");
    ONNX_GATE_ORDER
        .iter()
        .flat_map(|&g| &data[g * block..(g + 1) * block])
        .copied()
        .collect()
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

    /// Appends `op_type(inputs)` named `name` with several outputs (`""` omits an optional
    /// one).
    fn node_outputs(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: outputs.iter().map(|s| (*s).to_owned()).collect(),
            name: Some(name.to_owned()),
            op_type: Some(op_type.to_owned()),
            domain: None,
            attribute,
            doc_string: None,
        });
    }

    /// One LSTM step with ONNX's `LSTM` operator from the graph inputs `h`, `c` to the graph
    /// outputs `h_out`, `c_out` (`Y_h`, `Y_c`; `Y` omitted); returns the new hidden state as
    /// `[batch, hidden]`. `x` is `[batch, 512]`.
    fn lstm(&mut self, x: &str, hidden: usize) -> String {
        let seq = self.node("Unsqueeze", "lstm_x", &[x, AXES_0_NAME], vec![]);
        self.node_outputs(
            "LSTM",
            "lstm",
            &[
                &seq,
                LSTM_W_NAME,
                LSTM_R_NAME,
                LSTM_B_NAME,
                "",
                tensor::H,
                tensor::C,
            ],
            &["", tensor::H_OUT, tensor::C_OUT],
            vec![int("hidden_size", hidden as i64)],
        );
        self.node("Squeeze", "lstm_h", &[tensor::H_OUT, AXES_0_NAME], vec![])
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

/// An int64 initializer of shape `[values.len()]`.
fn int64_tensor_proto(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        dims: vec![values.len() as i64],
        data_type: Some(data_type::INT64),
        name: Some(name.to_owned()),
        doc_string: None,
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
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
    fn onnx_gate_order_by_hand() {
        // PyTorch blocks i, f, g, o (two rows of one column each) -> ONNX i, o, f, c.
        let pytorch = [0.0, 1.0, 10.0, 11.0, 20.0, 21.0, 30.0, 31.0];
        assert_eq!(
            onnx_gate_order(&pytorch, 2),
            [0.0, 1.0, 30.0, 31.0, 10.0, 11.0, 20.0, 21.0]
        );
    }

    #[test]
    fn lstm_model_has_the_recurrent_interface() {
        let mut meta = Metadata::new(
            Algo::Ppo,
            "breakout",
            "f34f08e5eb96e500e851a80be3277a56",
            vec![0, 1, 3, 4],
        )
        .with_policy(crate::Policy::Lstm);
        meta.seed = 3;
        let tensors = crate::arch::test_tensors(crate::Arch::PPO_LSTM, 4, 3);
        let ckpt = Checkpoint { meta, tensors };
        let bytes = to_onnx(&ckpt, &[]).expect("export");
        let graph = decode_model(&bytes).expect("decode").graph.expect("graph");
        let sig = |vs: &[ValueInfoProto]| -> Vec<(String, Option<i32>, Vec<dimension::Value>)> {
            vs.iter()
                .map(|v| {
                    let (e, d) = dims(v);
                    (v.name.clone().unwrap_or_default(), e, d)
                })
                .collect()
        };
        let (b, n) = (
            || dimension::Value::DimParam("batch".to_owned()),
            dimension::Value::DimValue,
        );
        let (f32_, u8_) = (Some(data_type::FLOAT), Some(data_type::UINT8));
        let state = || vec![n(1), b(), n(128)];
        assert_eq!(
            sig(&graph.input),
            [
                ("obs".to_owned(), u8_, vec![b(), n(1), n(84), n(84)]),
                ("h".to_owned(), f32_, state()),
                ("c".to_owned(), f32_, state()),
            ]
        );
        assert_eq!(
            sig(&graph.output),
            [
                ("logits".to_owned(), f32_, vec![b(), n(4)]),
                ("value".to_owned(), f32_, vec![b(), n(1)]),
                ("h_out".to_owned(), f32_, state()),
                ("c_out".to_owned(), f32_, state()),
            ]
        );
        let lstm = graph
            .node
            .iter()
            .find(|n| n.op_type.as_deref() == Some("LSTM"))
            .expect("an LSTM node");
        assert_eq!(
            lstm.input,
            ["lstm_x", "lstm.W", "lstm.R", "lstm.B", "", "h", "c"]
        );
        assert_eq!(lstm.output, ["", "h_out", "c_out"]);
        assert_eq!(lstm.attribute[0].name.as_deref(), Some("hidden_size"));
        assert_eq!(lstm.attribute[0].i, Some(128));
        // Initializers: W's second block (ONNX o) is PyTorch's fourth; B is bias_ih then
        // bias_hh, each reordered. The PyTorch-layout tensors are not stored.
        let init = |name: &str| {
            let t = graph
                .initializer
                .iter()
                .find(|i| i.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{name}"));
            let data: Vec<f32> = t
                .raw_data
                .as_deref()
                .unwrap_or_default()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (t.dims.clone(), data)
        };
        let (w_dims, w) = init("lstm.W");
        assert_eq!(w_dims, [1, 512, 512]);
        let w_ih = &ckpt.tensors["lstm.weight_ih_l0"].data;
        let block = 128 * 512;
        assert_eq!(w[block..2 * block], w_ih[3 * block..4 * block]);
        assert_eq!(w[2 * block..3 * block], w_ih[block..2 * block]);
        let (r_dims, r) = init("lstm.R");
        assert_eq!(r_dims, [1, 512, 128]);
        let w_hh = &ckpt.tensors["lstm.weight_hh_l0"].data;
        assert_eq!(r[3 * 128 * 128..], w_hh[2 * 128 * 128..3 * 128 * 128]);
        let (b_dims, bias) = init("lstm.B");
        assert_eq!(b_dims, [1, 1024]);
        let b_ih = &ckpt.tensors["lstm.bias_ih_l0"].data;
        let b_hh = &ckpt.tensors["lstm.bias_hh_l0"].data;
        assert_eq!(bias[..512], onnx_gate_order(b_ih, 128)[..]);
        assert_eq!(bias[512..], onnx_gate_order(b_hh, 128)[..]);
        assert_eq!(init("network.0.weight").0, [32, 1, 8, 8]);
        assert!(graph.initializer.iter().all(|i| !i
            .name
            .as_deref()
            .unwrap_or_default()
            .contains("_l0")));

        let props = read_metadata_props(&bytes).expect("props");
        let keys: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys[keys.len() - 4..],
            [
                "cartridge.recurrent",
                "cartridge.state_inputs",
                "cartridge.state_outputs",
                "cartridge.hidden_size"
            ]
        );
        let get = |k: &str| {
            props
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("cartridge.arch"), Some("nature_cnn_lstm"));
        assert_eq!(get("cartridge.frame_stack"), Some("1"));
        assert_eq!(get("cartridge.hidden_size"), Some("128"));
        // The props check as the checkpoint's keys do.
        let stripped = |k: &str| get(&format!("cartridge.{k}"));
        crate::checkpoint::check_recurrent_keys(crate::Policy::Lstm, stripped).expect("keys");
        // A CNN model carries none.
        let cnn =
            read_metadata_props(&to_onnx(&sample(Algo::Ppo), &[]).expect("cnn")).expect("props");
        assert!(cnn
            .iter()
            .all(|(k, _)| !k.contains("recurrent") && !k.contains("state_")));
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
