import { attr } from "../ir/attribute";
import type { Model } from "../ir/model";
import type { Value } from "../ir/value";
import type { DiscoveredModule } from "../match/module";
import type { SpecWarning } from "../dsl/match";

/**
 * Restores a tie that constant folding broke. PyTorch's exporter with
 * folding stores a tied output head as its own transposed copy of the token
 * embedding, so training the embedding would leave the head's copy frozen,
 * unlike PyTorch. When the embedding trains and the head's [in, out] weight
 * holds exactly the embedding's transpose, the head reads the embedding
 * through a Transpose instead, and the copy goes. Values are compared only
 * here, when the embedding trains and its data is read anyway.
 */
export function retieHead(model: Model, modules: readonly DiscoveredModule[], trainable: ReadonlySet<Value>): SpecWarning[] {
  const embedding = modules.find((module) => module.role === "embed.tokens" && module.weight && trainable.has(module.weight.value));
  const head = modules.find((module) => module.role === "head" && module.layout === "in_out" && module.weight && module.node.graph === model.graph);
  if (!embedding || !head || head.weight!.value === embedding.weight!.value) return [];
  const table = embedding.weight!.value;
  const copy = head.weight!.value;
  const [vocab, width] = embedding.weight!.shape;
  if (copy.initializer?.dims.join() !== [width, vocab].join()) return [];
  const source = table.initializer!.data() as ArrayLike<number>;
  const transposed = copy.initializer.data() as ArrayLike<number>;
  for (let row = 0; row < vocab; row++) {
    for (let column = 0; column < width; column++) if (source[row * width + column] !== transposed[column * vocab + row]) return [];
  }
  const read = model.graph.addNode({ opType: "Transpose", name: `/${head.path}/tied_weight`, inputs: [table], attributes: [attr.ints("perm", [1, 0])] }, { before: head.node });
  head.node.inputs.forEach((input, index) => {
    if (input === copy) head.node.setInput(index, read.outputs[0]);
  });
  if (copy.uses.length === 0) model.graph.removeInitializer(copy);
  return [{ message: `${head.path}: its weight "${copy.name}" was a folded copy of the tied embedding "${table.name}"; the head now reads the trained embedding, as in PyTorch.`, site: undefined }];
}
