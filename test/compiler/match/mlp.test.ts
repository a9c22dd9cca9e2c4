import { type Attribute, AttributeType } from "../../../compiler/ir/attribute";
import type { Value } from "../../../compiler/ir/value";
import { type MlpBlockJson, discoverModules, discoveryToJson } from "../../../compiler/match";
import { TinyGraph } from "./tiny-graphs";

const HIDDEN = 8;
const FFN = 16;

function text(name: string, value: string): Attribute {
  return { name, type: AttributeType.STRING, value: new TextEncoder().encode(value) };
}

function linear(t: TinyGraph, x: Value, name: string, inFeatures: number, outFeatures: number): Value {
  return t.op("MatMul", [x, t.weight(`model.layers.0.mlp.${name}.weight`, [inFeatures, outFeatures])], { name });
}

function scalar(t: TinyGraph, name: string): Value {
  return t.weight(name, []);
}

/** Builds x -> up -> activation -> down and returns the single MLP block. */
function ungated(activation: (t: TinyGraph, x: Value) => Value): MlpBlockJson {
  const t = new TinyGraph();
  const x = t.input("x", [1, 4, HIDDEN]);
  const up = linear(t, x, "fc1", HIDDEN, FFN);
  t.output(linear(t, activation(t, up), "fc2", FFN, HIDDEN));
  const mlp = discoveryToJson(discoverModules(t.model)).mlp!;
  expect(mlp).toHaveLength(1);
  return mlp[0];
}

/** Builds activation(gate(x)) * up(x) -> down and returns the single MLP block. */
function gated(activation: (t: TinyGraph, x: Value) => Value): MlpBlockJson {
  const t = new TinyGraph();
  const x = t.input("x", [1, 4, HIDDEN]);
  const gate = linear(t, x, "gate_proj", HIDDEN, FFN);
  const up = linear(t, x, "up_proj", HIDDEN, FFN);
  const product = t.op("Mul", [activation(t, gate), up], { name: "gating" });
  t.output(linear(t, product, "down_proj", FFN, HIDDEN));
  const mlp = discoveryToJson(discoverModules(t.model)).mlp!;
  expect(mlp).toHaveLength(1);
  return mlp[0];
}

function erfGelu(t: TinyGraph, x: Value): Value {
  const erf = t.op("Erf", [t.op("Div", [x, scalar(t, "sqrt2")])]);
  const half = t.op("Mul", [x, t.op("Add", [erf, scalar(t, "one")])]);
  return t.op("Mul", [half, scalar(t, "half")]);
}

function tanhGelu(t: TinyGraph, x: Value): Value {
  const cube = t.op("Mul", [t.op("Pow", [x, scalar(t, "three")]), scalar(t, "coefficient")]);
  const inner = t.op("Mul", [t.op("Add", [x, cube]), scalar(t, "sqrt2_over_pi")]);
  const tanh = t.op("Add", [t.op("Tanh", [inner]), scalar(t, "one")]);
  return t.op("Mul", [t.op("Mul", [x, scalar(t, "half")]), tanh]);
}

function silu(t: TinyGraph, x: Value): Value {
  return t.op("Mul", [x, t.op("Sigmoid", [x])]);
}

describe("MLP activation", () => {
  test("erf GELU", () => {
    const block = ungated(erfGelu);
    expect(block.up).toBe("layers.0.mlp.up");
    expect(block.down).toBe("layers.0.mlp.down");
    expect(block.gate).toBeNull();
    expect(block.activation.function).toBe("gelu");
    expect(block.activation.form).toBe("decomposed");
    expect(block.activation.ops).toEqual(["Div", "Erf", "Add", "Mul", "Mul"]);
    expect(block.activation.gated).toBe(false);
    expect(block.activation.gating).toBeNull();
  });

  test("tanh GELU", () => {
    const block = ungated(tanhGelu);
    expect(block.activation.function).toBe("gelu_tanh");
    expect(block.activation.ops).toContain("Tanh");
    expect(block.activation.ops).toContain("Pow");
  });

  test("Gelu op with tanh approximation", () => {
    expect(ungated((t, x) => t.op("Gelu", [x], { name: "gelu", attributes: [text("approximate", "tanh")] })).activation).toMatchObject({ function: "gelu_tanh", form: "op", nodes: ["gelu"] });
  });

  test("Gelu op without approximation", () => {
    expect(ungated((t, x) => t.op("Gelu", [x])).activation).toMatchObject({ function: "gelu", form: "op", ops: ["Gelu"] });
  });

  test.each([
    ["FastGelu", "gelu_tanh"],
    ["BiasGelu", "gelu"],
    ["Gelu", "gelu"],
    ["QuickGelu", "quick_gelu"],
  ])("com.microsoft %s", (op, expected) => {
    const block = ungated((t, x) => t.op(op, [x], { domain: "com.microsoft" }));
    expect(block.activation.function).toBe(expected);
    expect(block.activation.ops).toEqual([`com.microsoft::${op}`]);
  });

  test("Relu", () => {
    expect(ungated((t, x) => t.op("Relu", [x], { name: "relu" })).activation).toMatchObject({ function: "relu", form: "op", nodes: ["relu"], reason: null });
  });

  test("ungated SiLU", () => {
    expect(ungated(silu).activation).toMatchObject({ function: "silu", form: "decomposed", gated: false, ops: ["Sigmoid", "Mul"] });
  });

  test("SwiGLU", () => {
    const block = gated(silu);
    expect(block.gate).toBe("layers.0.mlp.gate");
    expect(block.up).toBe("layers.0.mlp.up");
    expect(block.activation).toMatchObject({ function: "silu", gated: true, ops: ["Sigmoid", "Mul"], gating: "gating" });
  });

  test("GeGLU with erf GELU", () => {
    expect(gated(erfGelu).activation).toMatchObject({ function: "gelu", gated: true, gating: "gating" });
  });

  test.each([0, 1])("fused gate_up with gate as Split output %i", (gateOutput) => {
    const t = new TinyGraph();
    const x = t.input("x", [1, 4, HIDDEN]);
    const fused = linear(t, x, "gate_up_proj", HIDDEN, 2 * FFN);
    const split = t.node("Split", [fused, t.ints("split_sizes", [FFN, FFN])], { name: "split", outputs: 2, attributes: [{ name: "axis", type: AttributeType.INT, value: -1n }] });
    const gate = split.outputs[gateOutput];
    const up = split.outputs[1 - gateOutput];
    const product = t.op("Mul", [silu(t, gate), up], { name: "gating" });
    t.output(linear(t, product, "down_proj", FFN, HIDDEN));
    const [block] = discoveryToJson(discoverModules(t.model)).mlp!;
    expect(block.gateUp).toBe("layers.0.mlp.gate_up");
    expect(block.up).toBeNull();
    expect(block.gate).toBeNull();
    expect(block.split).toEqual({ node: "split", gateOutput, upOutput: 1 - gateOutput });
    expect(block.activation).toMatchObject({ function: "silu", gated: true, gating: "gating" });
  });

  test("unknown activation reports its op", () => {
    const block = ungated((t, x) => t.op("Softplus", [x], { name: "softplus" }));
    expect(block.activation.function).toBe("unknown");
    expect(block.activation.form).toBeNull();
    expect(block.activation.ops).toEqual(["Softplus"]);
    expect(block.activation.nodes).toEqual(["softplus"]);
    expect(block.activation.reason).toContain("Softplus");
  });

  test("Sigmoid of another value is not SiLU", () => {
    const block = ungated((t, x) => t.op("Mul", [x, t.op("Sigmoid", [t.op("Mul", [x, scalar(t, "alpha")])])]));
    expect(block.activation.function).toBe("unknown");
  });
});
