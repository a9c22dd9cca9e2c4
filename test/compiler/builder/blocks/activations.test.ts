import { geluErf, geluTanh, silu } from "../../../../compiler/builder/blocks/activations";
import { Scope } from "../../../../compiler/builder/model-builder";
import { Value } from "../../../../compiler/ir/value";
import { blockModel } from "../block-model";
import * as reference from "../reference";
import { maxAbsDifference } from "../../../fixtures/run-model";

// -3.99 … 4.01: inside the range where the reference erf is accurate (|x / √2| < 3).
const INPUT = Float32Array.from({ length: 41 }, (_, i) => -4 + i * 0.2 + 0.01);
// Each activation is a handful of float32 operations on inputs of order 1.
const TOLERANCE = 2e-6;

async function activate(block: (scope: Scope, x: Value) => Value): Promise<Float32Array> {
  const output = await blockModel(1, (scope, x) => block(scope.child("act"), x)).run(INPUT, [INPUT.length]);
  return output.data;
}

describe("activations", () => {
  test("geluErf matches the erf definition", async () => {
    expect(maxAbsDifference(await activate(geluErf), Array.from(INPUT, reference.geluErf))).toBeLessThan(TOLERANCE);
  });

  test("geluTanh matches the tanh approximation", async () => {
    expect(maxAbsDifference(await activate(geluTanh), Array.from(INPUT, reference.geluTanh))).toBeLessThan(TOLERANCE);
  });

  test("the two GELU forms stay close", async () => {
    // The tanh approximation departs from the erf form by at most about 5e-4.
    expect(maxAbsDifference(await activate(geluTanh), await activate(geluErf))).toBeLessThan(1e-3);
  });

  test("silu matches x·sigmoid(x)", async () => {
    expect(maxAbsDifference(await activate(silu), Array.from(INPUT, reference.silu))).toBeLessThan(TOLERANCE);
  });

  test("op sequences", () => {
    const ops = (block: (scope: Scope, x: Value) => Value): string[] =>
      blockModel(1, block).model.graph.nodes.filter((node) => node.opType !== "Constant").map((node) => node.opType);
    expect(ops(geluErf)).toEqual(["Div", "Erf", "Add", "Mul", "Mul"]);
    expect(ops(geluTanh)).toEqual(["Mul", "Pow", "Mul", "Add", "Mul", "Tanh", "Add", "Mul"]);
    expect(ops(silu)).toEqual(["Sigmoid", "Mul"]);
  });
});
