import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import { floatParameter } from "./graph-walk";
import type { NoMatch } from "./linear";
import type { MatchedModule, Role } from "./module";

/** Ops through which position indices travel from their source to the Gather. */
const INDEX_PATH_OPS = new Set(["Unsqueeze", "Squeeze", "Reshape", "Expand", "Cast", "Slice", "Add", "Sub", "Identity", "Tile", "Where", "Mul"]);

/**
 * Tells what the indices of an embedding Gather are. Token ids come straight
 * from a graph input. Positions come from a Range (torch's arange), a CumSum,
 * or a graph input named like `position_ids`.
 */
function indexRole(indices: Value): Role | undefined {
  let value: Value | undefined = indices;
  for (let step = 0; value && step < 12; step++) {
    const lower = value.name.toLowerCase();
    if (value.isGraphInput) {
      if (lower.includes("position")) return "embed.positions";
      if (lower.includes("token_type") || lower.includes("segment")) return "embed.token_types";
      return lower.includes("input_ids") || lower.includes("ids") ? "embed.tokens" : undefined;
    }
    const producer: Node | undefined = value.producer;
    if (!producer) return undefined;
    if (producer.opType === "Range" || producer.opType === "CumSum") return "embed.positions";
    if (!INDEX_PATH_OPS.has(producer.opType)) return undefined;
    value = producer.inputs.find((input) => input && !input.isConstant);
  }
  return undefined;
}

/** Matches a Gather along axis 0 of a 2-D float initializer: an embedding table lookup. */
export function matchEmbedding(node: Node): MatchedModule | NoMatch {
  if (node.domain !== "" || node.opType !== "Gather") return { reason: `${node.opType} is not Gather` };
  const table = floatParameter(node.inputs[0]);
  if (!table || table.shape.length !== 2) return { reason: "the data input is not a 2-D float initializer" };
  if (node.getInt("axis", 0) !== 0) return { reason: "the Gather does not index rows (axis is not 0)" };
  const indices = node.inputs[1];
  if (!indices || indices.isConstant) return { reason: "the indices are a constant, so this is a slice of a table, not a lookup" };
  return {
    kind: "embedding",
    node,
    nodes: [node],
    weight: table,
    input: indices,
    output: node.outputs[0],
    inFeatures: table.shape[0],
    outFeatures: table.shape[1],
    form: "Gather",
    structuralRole: indexRole(indices),
  };
}

/**
 * Reads the tables of a com.microsoft EmbedLayerNormalization: word (input
 * 2), position (3) and segment (4) embeddings. Its gamma and beta are matched
 * as a norm by the norm matcher.
 */
export function matchFusedEmbeddings(node: Node): MatchedModule[] {
  if (node.domain !== "com.microsoft" || node.opType !== "EmbedLayerNormalization") return [];
  const slots: [number, number, Role][] = [
    [2, 0, "embed.tokens"],
    [3, 8, "embed.positions"],
    [4, 1, "embed.token_types"],
  ];
  const found: MatchedModule[] = [];
  for (const [tableInput, indexInput, role] of slots) {
    const table = floatParameter(node.inputs[tableInput]);
    if (!table || table.shape.length !== 2) continue;
    found.push({
      kind: "embedding",
      node,
      nodes: [node],
      weight: table,
      input: node.inputs[indexInput],
      output: node.outputs[0],
      inFeatures: table.shape[0],
      outFeatures: table.shape[1],
      form: "EmbedLayerNormalization",
      structuralRole: role,
    });
  }
  return found;
}
