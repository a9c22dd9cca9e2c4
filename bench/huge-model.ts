/**
 * Writes a graph with LLaMA-2-13B weight shapes (13.0B float32 parameters,
 * 48.5 GiB of external data) whose data file is sparse. The file takes no
 * disk space and no time to create, while reading it would need twice the
 * memory of the benchmark machine. Loading and inspecting must not touch it.
 * Usage: tsx bench/huge-model.ts OUT_DIR
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Model } from "../compiler/ir/model";
import { Graph } from "../compiler/ir/graph";
import { Value } from "../compiler/ir/value";
import { tensorType } from "../compiler/ir/types";
import { DataType } from "../compiler/onnx/dtype";
import { Tensor } from "../compiler/onnx/tensor";
import { writeModelFile } from "../compiler/onnx/model-writer";
import { modelToProto } from "../compiler/ir/to-proto";

const SHAPE = { layers: 40, hidden: 5120, ffn: 13824, vocab: 32000 };
const LOCATION = "model.onnx.data";

/** Hands out 64-byte aligned ranges of the sparse data file. */
class SparseLayout {
  offset = 0;

  constructor(private readonly dataPath: string) {}

  weight(graph: Graph, name: string, dims: number[]): Value {
    const length = dims.reduce((a, b) => a * b, 1) * 4;
    const ref = { location: LOCATION, path: this.dataPath, offset: this.offset, length, missing: false };
    this.offset += Math.ceil(length / 64) * 64;
    return graph.addInitializer(new Tensor(name, DataType.FLOAT, dims, { kind: "external", ref }), true);
  }
}

function matmul(graph: Graph, name: string, input: Value, weight: Value): Value {
  return graph.addNode({ opType: "MatMul", name: `${name}/MatMul`, inputs: [input, weight] }).outputs[0];
}

function binary(graph: Graph, op: string, name: string, a: Value, b: Value): Value {
  return graph.addNode({ opType: op, name: `${name}/${op}`, inputs: [a, b] }).outputs[0];
}

function buildHugeModel(dataPath: string): { model: Model; bytes: number } {
  const model = new Model({ irVersion: 8, opsetImports: new Map([["", 17]]), graphName: "llama-13b-shapes" });
  const graph = model.graph;
  const layout = new SparseLayout(dataPath);
  const { layers, hidden, ffn, vocab } = SHAPE;
  const ids = graph.addInput("input_ids", tensorType(DataType.INT64, ["batch", "sequence"]));
  const embed = layout.weight(graph, "model.embed_tokens.weight", [vocab, hidden]);
  let h = graph.addNode({ opType: "Gather", name: "/model/embed_tokens/Gather", inputs: [embed, ids] }).outputs[0];
  for (let i = 0; i < layers; i++) {
    const prefix = `model.layers.${i}`;
    const scope = `/model/layers.${i}`;
    const projections = ["q", "k", "v"].map((p) => matmul(graph, `${scope}/self_attn/${p}_proj`, h, layout.weight(graph, `${prefix}.self_attn.${p}_proj.weight`, [hidden, hidden])));
    const mixed = binary(graph, "Add", `${scope}/self_attn/mix`, binary(graph, "Add", `${scope}/self_attn/qk`, projections[0], projections[1]), projections[2]);
    const attention = matmul(graph, `${scope}/self_attn/o_proj`, mixed, layout.weight(graph, `${prefix}.self_attn.o_proj.weight`, [hidden, hidden]));
    h = binary(graph, "Add", `${scope}/attn_residual`, h, attention);
    const gate = matmul(graph, `${scope}/mlp/gate_proj`, h, layout.weight(graph, `${prefix}.mlp.gate_proj.weight`, [hidden, ffn]));
    const up = matmul(graph, `${scope}/mlp/up_proj`, h, layout.weight(graph, `${prefix}.mlp.up_proj.weight`, [hidden, ffn]));
    const activated = binary(graph, "Mul", `${scope}/mlp/act`, graph.addNode({ opType: "Sigmoid", name: `${scope}/mlp/act_fn/Sigmoid`, inputs: [gate] }).outputs[0], gate);
    const down = matmul(graph, `${scope}/mlp/down_proj`, binary(graph, "Mul", `${scope}/mlp/gated`, activated, up), layout.weight(graph, `${prefix}.mlp.down_proj.weight`, [ffn, hidden]));
    h = binary(graph, "Add", `${scope}/mlp_residual`, h, down);
  }
  const logits = matmul(graph, "/lm_head", h, layout.weight(graph, "lm_head.weight", [hidden, vocab]));
  logits.name = "logits";
  logits.type = tensorType(DataType.FLOAT, ["batch", "sequence", vocab]);
  graph.addOutput(logits);
  return { model, bytes: layout.offset };
}

const outDir = process.argv[2];
if (!outDir) throw new Error("usage: tsx bench/huge-model.ts OUT_DIR");
fs.mkdirSync(outDir, { recursive: true });
const dataPath = path.join(fs.realpathSync(outDir), LOCATION);
const { model, bytes } = buildHugeModel(dataPath);
fs.closeSync(fs.openSync(dataPath, "w"));
fs.truncateSync(dataPath, bytes);
writeModelFile(path.join(outDir, "model.onnx"), () => modelToProto(model));
process.stdout.write(`${JSON.stringify({ model: path.join(outDir, "model.onnx"), dataBytes: bytes, diskBytes: fs.statSync(dataPath).blocks * 512 })}\n`);
