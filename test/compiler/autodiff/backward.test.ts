import * as path from "node:path";
import { buildBackward } from "../../../compiler/autodiff/backward";
import { defineSpec, lora, select } from "../../../compiler/dsl";
import { loadModel } from "../../../compiler/ir/io";
import { inferShapes } from "../../../compiler/ir/infer";
import type { Model } from "../../../compiler/ir/model";
import { isFloatType } from "../../../compiler/onnx/dtype";
import { compileForTest } from "../../helpers/artifacts";
import { CORPUS_DIR, corpusModels, hasCorpus, isGraphOnly } from "../../helpers/corpus";
import { removeTempDirs } from "../../helpers/temp";
import { gradCheck } from "./gradcheck";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");

/** Differentiates every float output with respect to every float initializer, the widest backward pass a model allows. */
function backwardOfEverything(model: Model): void {
  inferShapes(model);
  const wrt = [...model.graph.initializers.values()].filter((value) => isFloatType(value.initializer!.dtype) && value.initializer!.dims.length >= 1);
  const seeds = new Map(model.graph.outputs.filter((output) => output.type?.kind === "tensor" && isFloatType(output.type.elemType)).map((output) => [output, output]));
  buildBackward(model, seeds, wrt);
}

/**
 * Corpus graphs whose float path contains an op that has no gradient rule.
 * bloom's ATen nodes are PyTorch fallbacks of an onnxruntime-training export,
 * with no ONNX definition to decompose, so training it needs a plain export.
 */
const NO_RULE: Record<string, string> = {
  "bloom-3layer-training-ort/3layer_bloom_optimized_training.onnx": "org.pytorch.aten::ATen",
};

const FIXTURE_FILES = ["gpt2-tiny-op14.onnx", "gpt2-tiny-op17.onnx", "llama-tiny.onnx", "bert-tiny-op14.onnx", "bert-tiny-op17.onnx"];

describe("gradient rule coverage", () => {
  test.each(FIXTURE_FILES)("every op of %s has a rule", (file) => {
    expect(() => backwardOfEverything(loadModel(path.join(FIXTURES, file)))).not.toThrow();
  });

  const corpus = hasCorpus ? corpusModels() : [];
  (hasCorpus ? test.each(corpus) : test.skip.each(["(no ../shared/corpus)"]))("every op of corpus %s has a rule", (relative) => {
    const model = loadModel(path.join(CORPUS_DIR, relative), { allowMissingExternalData: isGraphOnly(relative) });
    const opset = model.opsetVersion("") ?? 0;
    if (opset < 13) {
      // Training graphs need opset 13; compile rejects these before any rule runs.
      expect(() => backwardOfEverything(model)).toThrow(/opset 13 or later/);
      return;
    }
    const missing = NO_RULE[relative.split(path.sep).join("/")];
    if (missing) expect(() => backwardOfEverything(model)).toThrow(`no gradient rule for ${missing}`);
    else expect(() => backwardOfEverything(model)).not.toThrow();
  });
});

describe("backward pass", () => {
  test("missing rule names the op, node and path", async () => {
    await expect(
      gradCheck([{ name: "x", dims: [3] }], (ops, { x }) => ops.op("Round", [ops.op("Exp", [x])])),
    ).rejects.toThrow(/no gradient rule for Round \(node "Round"\).*trainable tensor "x" → Exp "Exp" → Round "Round"/);
  });

  test("no backward below the lowest trainable layer", () => {
    const artifacts = compileForTest(path.join(FIXTURES, "llama-tiny.onnx"), defineSpec({ methods: [lora({ targets: select.layers(1).and(select.role("attn.o")) })] }));
    const graph = loadModel(path.join(artifacts.dir, "grad.onnx")).graph;
    const backwardNodes = graph.nodes.filter((node) => node.name.startsWith("/grad/"));
    expect(backwardNodes.length).toBeGreaterThan(20);
    // Nothing in layer 0, nor in layer 1 before its attention output projection.
    expect(backwardNodes.some((node) => node.name.includes("layers.0/"))).toBe(false);
    expect(backwardNodes.some((node) => node.name.includes("layers.1/self_attn/q_proj"))).toBe(false);
    // Layer 1's MLP passes the gradient on to its input, but its frozen weights get none (no flattened weight product).
    const upProjection = backwardNodes.filter((node) => node.name.includes("layers.1/mlp/up_proj"));
    expect(upProjection.map((node) => node.opType)).toContain("MatMul");
    expect(upProjection.map((node) => node.opType)).not.toContain("Flatten");
  });

  test("tied embedding and head get one summed gradient", async () => {
    const artifacts = compileForTest(path.join(FIXTURES, "gpt2-tiny-op17.onnx"), defineSpec({ methods: [lora({ targets: select.role("attn.o"), train: select.role("embed.tokens") })] }));
    const names = artifacts.manifest.parameters.map((parameter) => parameter.name);
    expect(names.filter((name) => name === "transformer.wte.weight")).toHaveLength(1);
    const graph = loadModel(path.join(artifacts.dir, "grad.onnx")).graph;
    const output = graph.outputs.find((value) => value.name === "transformer.wte.weight.grad")!;
    // The gradient output sums the head's and the embedding's contributions.
    const identity = output.producer!;
    expect(["Add", "Sum"]).toContain(identity.inputs[0]!.producer!.opType);
  });
});
