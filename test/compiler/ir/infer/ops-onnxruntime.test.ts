import * as path from "node:path";
import { Model } from "../../../../compiler/ir/model";
import { Graph } from "../../../../compiler/ir/graph";
import { saveModel } from "../../../../compiler/ir/io";
import { tensorType } from "../../../../compiler/ir/types";
import { makeTempDir, removeTempDirs } from "../../../helpers/temp";
import { DataType, attr, constant, input, int64s, newModel, op, out } from "./build";
import { ComparisonCase, compareWithOnnxRuntime, expectAgreement } from "./onnxruntime-comparison";

/**
 * Rules for operators the corpus graphs do not use, checked the same way as
 * the corpus: small graphs built here run in onnxruntime with every value as
 * an output, and the inferred shapes must match what it returns.
 */

interface OpCase {
  build: () => Model;
  options?: ComparisonCase;
}

function single(opset: number, build: (graph: Graph) => void): () => Model {
  return () => {
    const model = newModel({ "": opset, "com.microsoft": 1 });
    build(model.graph);
    return model;
  };
}

const CASES: Record<string, OpCase> = {
  "Einsum with batch, implicit and ellipsis forms": {
    build: single(17, (g) => {
      const a = input(g, "a", DataType.FLOAT, [2, 3, 4]);
      const b = input(g, "b", DataType.FLOAT, [2, 4, 5]);
      op(g, "Einsum", [a, b], { attributes: [attr.string("equation", "bij,bjk->bik")] });
      op(g, "Einsum", [a], { attributes: [attr.string("equation", "...ij->...ji")] });
      op(g, "Einsum", [a, a], { attributes: [attr.string("equation", "bij,bij")] });
    }),
  },
  "Tile, Pad and Resize": {
    build: single(18, (g) => {
      const x = input(g, "x", DataType.FLOAT, ["batch", 3, 4, 4]);
      op(g, "Tile", [x, int64s(g, "repeats", [1, 2, 1, 3])]);
      op(g, "Pad", [x, int64s(g, "pads", [1, 0, 2, 3]), undefined, int64s(g, "axes", [1, 3])]);
      op(g, "Resize", [x, undefined, constant(g, "scales", DataType.FLOAT, [4], [1, 1, 2, 0.5])]);
    }),
    options: { sizes: { batch: 2 } },
  },
  "TopK, ArgMax, CumSum and Trilu": {
    build: single(17, (g) => {
      const x = input(g, "x", DataType.FLOAT, ["rows", 6]);
      op(g, "TopK", [x, int64s(g, "k", [2])], { outputs: 2 });
      op(g, "ArgMax", [x], { attributes: [attr.int("axis", 1), attr.int("keepdims", 0)] });
      op(g, "CumSum", [x, int64s(g, "axis", [1], [])]);
      op(g, "Trilu", [x]);
    }),
    options: { sizes: { rows: 3 } },
  },
  "GatherND, GatherElements and ScatterND": {
    build: single(17, (g) => {
      const data = input(g, "data", DataType.FLOAT, [2, 3, 4]);
      op(g, "GatherND", [data, int64s(g, "nd_index", [0, 1, 2, 2], [2, 2, 1])], { attributes: [attr.int("batch_dims", 1)] });
      op(g, "GatherElements", [data, int64s(g, "element_index", [0, 1, 2, 0], [1, 1, 4])], { attributes: [attr.int("axis", 1)] });
      op(g, "ScatterND", [data, int64s(g, "scatter_index", [1], [1, 1]), input(g, "updates", DataType.FLOAT, [1, 3, 4])]);
    }),
  },
  "Flatten, Squeeze, Unsqueeze and stepped Slice": {
    build: single(11, (g) => {
      const x = input(g, "x", DataType.FLOAT, ["batch", 1, 4, 5]);
      op(g, "Flatten", [x], { attributes: [attr.int("axis", -1)] });
      const squeezed = op(g, "Squeeze", [x], { attributes: [attr.ints("axes", [1])] });
      op(g, "Unsqueeze", [out(squeezed)], { attributes: [attr.ints("axes", [-1, 0])] });
      op(g, "Slice", [x, int64s(g, "starts", [-1, 0]), int64s(g, "ends", [-100, 5]), int64s(g, "axes", [2, 3]), int64s(g, "steps", [-2, 2])]);
    }),
    options: { sizes: { batch: 2 } },
  },
  "Split by num_outputs, Reshape with allowzero and ReduceMean without axes": {
    build: single(18, (g) => {
      const x = input(g, "x", DataType.FLOAT, ["batch", 10]);
      op(g, "Split", [x], { outputs: 3, attributes: [attr.int("axis", 1), attr.int("num_outputs", 3)] });
      op(g, "Reshape", [x, int64s(g, "shape", [0, 2, 5])], { attributes: [attr.int("allowzero", 0)] });
      op(g, "ReduceMean", [x], { attributes: [attr.int("keepdims", 0)] });
      op(g, "ReduceMax", [x], { attributes: [attr.int("noop_with_empty_axes", 1)] });
    }),
    options: { sizes: { batch: 2 } },
  },
  "LayerNormalization statistics over two axes": {
    build: single(17, (g) => {
      const x = input(g, "x", DataType.FLOAT, ["batch", 3, 4]);
      op(g, "LayerNormalization", [x, input(g, "scale", DataType.FLOAT, [3, 4])], { outputs: 3, attributes: [attr.int("axis", 1)] });
    }),
    options: { sizes: { batch: 2 } },
  },
  "MatMulNBits": {
    build: single(21, (g) => {
      const a = input(g, "a", DataType.FLOAT, ["batch", 32]);
      const b = constant(g, "b", DataType.UINT8, [8, 1, 16], new Array(128).fill(0x88));
      const scales = constant(g, "scales", DataType.FLOAT, [8], new Array(8).fill(0.5));
      op(g, "MatMulNBits", [a, b, scales], { domain: "com.microsoft", attributes: [attr.int("K", 32), attr.int("N", 8), attr.int("bits", 4), attr.int("block_size", 32)] });
    }),
    options: { sizes: { batch: 3 } },
  },
  "SkipLayerNormalization statistics": {
    build: single(17, (g) => {
      const x = input(g, "x", DataType.FLOAT, ["batch", "sequence", 4]);
      const gamma = constant(g, "gamma", DataType.FLOAT, [4], [1, 1, 1, 1]);
      const beta = constant(g, "beta", DataType.FLOAT, [4], [0, 0, 0, 0]);
      op(g, "SkipLayerNormalization", [x, input(g, "skip", DataType.FLOAT, ["batch", "sequence", 4]), gamma, beta], { domain: "com.microsoft", outputs: 4 });
      const rows = input(g, "rows", DataType.FLOAT, ["tokens", 4]);
      op(g, "SkipSimplifiedLayerNormalization", [rows, input(g, "row_skip", DataType.FLOAT, ["tokens", 4]), gamma], { domain: "com.microsoft", outputs: 4 });
    }),
    options: { sizes: { batch: 2, sequence: 3, tokens: 5 } },
  },
  "Cast of known values": {
    build: single(17, (g) => {
      const integers = int64s(g, "integers", [300, -1, 2 ** 32 + 5, -129, 2049, 65537, 200]);
      const floats = constant(g, "floats", DataType.FLOAT, [6], [300.7, -1.5, 1e10, NaN, Infinity, -0.5]);
      const targets = [DataType.UINT8, DataType.INT8, DataType.INT16, DataType.UINT16, DataType.INT32, DataType.UINT32, DataType.INT64, DataType.UINT64, DataType.FLOAT16, DataType.BOOL];
      for (const to of targets) {
        op(g, "Cast", [integers], { attributes: [attr.int("to", to)] });
        op(g, "Cast", [floats], { attributes: [attr.int("to", to)] });
      }
    }),
  },
  "Resize with keep_aspect_ratio_policy": {
    build: single(18, (g) => {
      const x = input(g, "x", DataType.FLOAT, [1, 1, 3, 7]);
      for (const policy of ["stretch", "not_larger", "not_smaller"]) {
        op(g, "Resize", [x, undefined, undefined, int64s(g, `sizes_${policy}`, [5, 5])], {
          attributes: [attr.ints("axes", [2, 3]), attr.string("keep_aspect_ratio_policy", policy)],
        });
      }
    }),
  },
  "If with a condition known only at run time": {
    build: () => {
      const model = newModel({ "": 17 });
      const g = model.graph;
      const x = input(g, "x", DataType.FLOAT, ["batch", 4]);
      const node = op(g, "If", [input(g, "condition", DataType.BOOL, [])]);
      const thenBranch = new Graph(model.names, "then_branch", node);
      thenBranch.addOutput(out(op(thenBranch, "Relu", [x])));
      const elseBranch = new Graph(model.names, "else_branch", node);
      elseBranch.addOutput(out(op(elseBranch, "Neg", [x])));
      node.setAttribute(attr.graph("then_branch", thenBranch));
      node.setAttribute(attr.graph("else_branch", elseBranch));
      return model;
    },
    options: { sizes: { batch: 2 } },
  },
  "Loop with a carried value and a scan output": {
    build: () => {
      const model = newModel({ "": 17 });
      const g = model.graph;
      const start = input(g, "start", DataType.FLOAT, [2, 4]);
      const node = op(g, "Loop", [int64s(g, "trips", [3], []), undefined, start], { outputs: 2 });
      const body = new Graph(model.names, "body", node);
      body.inputs.push(body.createValue("iteration", tensorType(DataType.INT64, [])), body.createValue("keep_going", tensorType(DataType.BOOL, [])), body.createValue("carried", tensorType(DataType.FLOAT, [2, 4])));
      const next = op(body, "Add", [body.inputs[2], start]);
      body.addOutput(out(op(body, "Identity", [body.inputs[1]])));
      body.addOutput(out(next));
      body.addOutput(out(op(body, "ReduceSum", [out(next), int64s(body, "rows", [0])])));
      node.setAttribute(attr.graph("body", body));
      return model;
    },
  },
  "Scan over the sequence axis": {
    build: () => {
      const model = newModel({ "": 17 });
      const g = model.graph;
      const node = op(g, "Scan", [input(g, "state", DataType.FLOAT, [4]), input(g, "sequence", DataType.FLOAT, ["steps", 4])], {
        outputs: 2,
        attributes: [attr.int("num_scan_inputs", 1)],
      });
      const body = new Graph(model.names, "body", node);
      body.inputs.push(body.createValue("state_in", tensorType(DataType.FLOAT, [4])), body.createValue("item", tensorType(DataType.FLOAT, [4])));
      const sum = op(body, "Add", [body.inputs[0], body.inputs[1]]);
      body.addOutput(out(sum));
      body.addOutput(out(op(body, "Mul", [out(sum), body.inputs[1]])));
      node.setAttribute(attr.graph("body", body));
      return model;
    },
    options: { sizes: { steps: 5 } },
  },
};

describe("shape rules against onnxruntime on built graphs", () => {
  afterAll(removeTempDirs);

  it.each(Object.keys(CASES))("%s", async (name) => {
    const { build, options } = CASES[name];
    const model = build();
    const file = path.join(makeTempDir("peftc-infer-op-"), "built.onnx");
    for (const node of model.graph.nodes) for (const output of node.outputs) if (!output.isGraphOutput) model.graph.addOutput(output);
    saveModel(model, file);
    expectAgreement(await compareWithOnnxRuntime(file, options ?? { sizes: {} }));
  });
});
