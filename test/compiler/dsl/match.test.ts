import * as path from "node:path";
import { Selector, SpecError, formatWarning, matchSelector, resolveSelection, select, selectionTargets } from "../../../compiler/dsl";
import { toSelector } from "../../../compiler/dsl/selector";
import type { Target } from "../../../compiler/dsl";
import { loadModel } from "../../../compiler/ir/io";
import { discoverModules } from "../../../compiler/match";
import type { DiscoveredModule, Role } from "../../../compiler/match/module";

const FIXTURES_DIR = path.resolve(__dirname, "../../../fixtures");

const gpt2 = selectionTargets(discoverModules(loadModel(path.join(FIXTURES_DIR, "gpt2-tiny-op17.onnx"))));
const llama = selectionTargets(discoverModules(loadModel(path.join(FIXTURES_DIR, "llama-tiny.onnx"))));

const paths = (targets: readonly Target[]): string[] => targets.map((target) => target.path);

/** Runs `action` and returns the SpecError it threw, failing the test otherwise. */
function specErrorOf(action: () => unknown): SpecError {
  try {
    action();
  } catch (error) {
    if (error instanceof SpecError) return error;
    throw error;
  }
  throw new Error("expected a SpecError");
}

/** A linear target made by hand, for layouts no fixture has. */
function linearTarget(targetPath: string, role: Role, layer: number | null): Target {
  const module = { path: targetPath, role, layer, kind: "linear", originalName: targetPath } as unknown as DiscoveredModule;
  return { path: targetPath, role, layer, kind: "linear", module, originalName: targetPath, torchName: targetPath, inFeatures: 8, outFeatures: 8 };
}

describe("selection targets", () => {
  it("list GPT-2's fused projection and its parts", () => {
    const layer0 = paths(gpt2).filter((targetPath) => targetPath.startsWith("layers.0.attn."));
    expect(layer0).toEqual(["layers.0.attn.qkv", "layers.0.attn.q", "layers.0.attn.k", "layers.0.attn.v", "layers.0.attn.o"]);
    const q = gpt2.find((target) => target.path === "layers.0.attn.q")!;
    expect(q.part).toBe("q");
    expect(q.module.path).toBe("layers.0.attn.qkv");
    expect(q.outFeatures).toBe(64);
    expect(q.torchName).toBe("transformer.h.0.attn.c_attn");
  });
});

describe("resolveSelection on gpt2-tiny", () => {
  it("selects parts of the fused projection by role", () => {
    const selection = resolveSelection(select.role("attn.q", "attn.v"), gpt2, "lora targets", ["linear"]);
    expect(paths(selection.targets)).toEqual(["layers.0.attn.q", "layers.0.attn.v", "layers.1.attn.q", "layers.1.attn.v"]);
    expect(selection.targets.map((target) => target.part)).toEqual(["q", "v", "q", "v"]);
    expect(selection.warnings).toEqual([]);
  });

  it("collapses parts into a selected fused projection", () => {
    const selection = resolveSelection(select.path("layers.*.attn.*"), gpt2, "lora targets", ["linear"]);
    expect(paths(selection.targets)).toEqual(["layers.0.attn.qkv", "layers.0.attn.o", "layers.1.attn.qkv", "layers.1.attn.o"]);
  });

  it("keeps parts of a fused projection that is excluded", () => {
    const selector = select.path("layers.*.attn.*").except(select.role("attn.qkv"));
    expect(paths(matchSelector(selector, gpt2))).toEqual(["layers.0.attn.o", "layers.1.attn.o"]);
  });

  it("excludes the head from allLinear", () => {
    const selection = resolveSelection(select.allLinear(), gpt2, "lora targets", ["linear"]);
    expect(paths(selection.targets)).toEqual([
      "layers.0.attn.qkv",
      "layers.0.attn.o",
      "layers.0.mlp.up",
      "layers.0.mlp.down",
      "layers.1.attn.qkv",
      "layers.1.attn.o",
      "layers.1.mlp.up",
      "layers.1.mlp.down",
    ]);
  });

  it("selects a whole fused module by its original name", () => {
    const selection = resolveSelection(select.name("transformer.h.1.attn.c_attn"), gpt2, "lora targets", ["linear"]);
    expect(paths(selection.targets)).toEqual(["layers.1.attn.qkv"]);
  });

  it("intersects roles with layers", () => {
    const selection = resolveSelection(select.and(select.role("attn.v"), select.layers([1])), gpt2, "lora targets", ["linear"]);
    expect(paths(selection.targets)).toEqual(["layers.1.attn.v"]);
  });

  it("rejects an empty match with the closest paths", () => {
    const error = specErrorOf(() => resolveSelection(select.path("layers.*.attn.query"), gpt2, "lora targets", ["linear"]));
    expect(error.code).toBe("E_SPEC_SELECTOR");
    expect(error.message).toContain(`select.path("layers.*.attn.query") matches no module of the model`);
    expect(error.message).toContain("Closest module paths: layers.0.attn.q,");
    expect(error.message).toContain("Roles in this model: attn.k, attn.o, attn.q, attn.qkv, attn.v");
    expect(error.site?.file).toBe(__filename);
  });

  it("rejects modules of a kind the method cannot take", () => {
    const error = specErrorOf(() => resolveSelection(select.role("embed.tokens"), gpt2, "lora targets", ["linear"]));
    expect(error.code).toBe("E_SPEC_SELECTOR");
    expect(error.message).toContain("matches only embedding modules (embed.tokens)");
  });
});

describe("resolveSelection on llama-tiny", () => {
  it("selects separate projections by role", () => {
    const selection = resolveSelection(select.role("attn.q", "attn.v"), llama, "lora targets", ["linear"]);
    expect(paths(selection.targets)).toEqual(["layers.0.attn.q", "layers.0.attn.v", "layers.1.attn.q", "layers.1.attn.v"]);
    expect(selection.targets.every((target) => target.part === undefined)).toBe(true);
  });

  it("selects by regular expression and layer range", () => {
    expect(paths(matchSelector(select.regex(/layers\.1\.mlp\.(gate|up)/), llama))).toEqual(["layers.1.mlp.gate", "layers.1.mlp.up"]);
    expect(paths(matchSelector(select.layers(1).and("**.down"), llama))).toEqual(["layers.1.mlp.down"]);
  });

  it("accepts plain path globs where selectors go", () => {
    expect(paths(matchSelector(select.or("layers.0.attn.{q,k}", ["norm"]), llama))).toEqual(["layers.0.attn.q", "layers.0.attn.k", "norm"]);
  });

  it("selects by PyTorch module name", () => {
    expect(paths(matchSelector(select.name("model.layers.*.self_attn.o_proj"), llama))).toEqual(["layers.0.attn.o", "layers.1.attn.o"]);
  });

  it("rejects a role llama-tiny lacks", () => {
    const error = specErrorOf(() => resolveSelection(select.role("attn.qkv"), llama, "lora targets", ["linear"]));
    expect(error.code).toBe("E_SPEC_SELECTOR");
    const closest = /Closest module paths: (.*?)\. Roles/.exec(error.message)?.[1].split(", ");
    expect(closest).toContain("layers.0.attn.q");
    expect(closest).toHaveLength(5);
    expect(error.message).toContain("Roles in this model: attn.k, attn.o, attn.q, attn.v, head, mlp.down, mlp.gate, mlp.up.");
  });
});

describe("resolveSelection rejects a part that matches nothing", () => {
  it.each([
    ["a path glob", () => select.path("layers.*.attn.q", "layers.*.attn.vv"), `"layers.*.attn.vv" in select.path("layers.*.attn.q", "layers.*.attn.vv") matches no module of the model`],
    ["a glob of a plain list", () => toSelector(["layers.*.attn.q", "layers.*.atn.v"], undefined, ["targets"]), `"layers.*.atn.v" in select.path("layers.*.attn.q", "layers.*.atn.v") matches no module`],
    ["a name", () => select.name("q_proj", "v_prj"), `"v_prj" in select.name("q_proj", "v_prj") matches no module`],
    ["a module path", () => select.module("layers.0.attn.q", "layers.0.attn.qq"), `"layers.0.attn.qq" in select.module("layers.0.attn.q", "layers.0.attn.qq") matches no module`],
    ["a role", () => select.role("attn.q", "attn.qkv" as "attn.q"), `role "attn.qkv" in select.role("attn.q", "attn.qkv") matches no module`],
    ["a layer", () => select.role("attn.q").and(select.layers(0, 3)), `layer 2 in select.layers([0, 1, 2, 3]) matches no module`],
    ["a part of or", () => select.role("attn.q").or(select.path("layers.*.attn.vv")), `"layers.*.attn.vv" in select.path("layers.*.attn.vv") matches no module`],
    ["an excluded part", () => select.role("attn.q").except(select.path("layers.9.attn.q")), `"layers.9.attn.q" in select.path("layers.9.attn.q") matches no module`],
  ])("rejects %s", (_what, make, reason) => {
    const error = specErrorOf(() => resolveSelection(make(), llama, "lora targets", ["linear"]));
    expect(error.code).toBe("E_SPEC_SELECTOR");
    expect(error.message).toContain(`lora targets: ${reason}`);
    expect(error.message).toContain("Closest module paths: ");
  });

  it("names the closest paths to the part", () => {
    const error = specErrorOf(() => resolveSelection(select.path("layers.*.attn.q", "layers.*.attn.vv"), llama, "lora targets", ["linear"]));
    expect(error.message).toMatch(/Closest module paths: layers\.0\.attn\.v, /);
  });

  it("points at the part's own selector call", () => {
    const selector = select.role("attn.q").or(select.path("layers.*.attn.vv"));
    const inner = (selector.term as { items: Selector[] }).items[1];
    const error = specErrorOf(() => resolveSelection(selector, llama, "lora targets", ["linear"]));
    expect(error.site).toEqual(inner.site);
  });

  it("points at the element of a plain list", () => {
    const error = specErrorOf(() => resolveSelection(toSelector(["layers.*.attn.q", "layers.*.atn.v"], undefined, ["targets"]), llama, "lora targets", ["linear"]));
    expect(error.option).toEqual(["targets", "1"]);
  });

  it("rejects a part of a kind the method cannot take", () => {
    const error = specErrorOf(() => resolveSelection(select.path("layers.*.attn_norm", "layers.0.attn.q"), llama, "lora targets", ["linear"]));
    expect(error.message).toContain(`"layers.*.attn_norm" in select.path("layers.*.attn_norm", "layers.0.attn.q") matches only norm modules (layers.0.attn_norm, layers.1.attn_norm), and lora targets takes linear modules`);
  });

  it("says square brackets are literal", () => {
    const error = specErrorOf(() => resolveSelection(select.path("layers.0.attn.q", "layers.1.attn.[qk]"), llama, "lora targets", ["linear"]));
    expect(error.message).toContain("Square brackets are literal characters in peftc globs, not character classes; write {q,k} for either.");
  });

  it("names the model's layer range for a layer", () => {
    const error = specErrorOf(() => resolveSelection(select.layers(0, 7), llama, "lora targets", ["linear"]));
    expect(error.message).toContain("layer 2 in select.layers([0, 1, 2, 3, 4, 5, 6, 7]) matches no module");
    expect(error.message).toContain("The model's layers are 0..1.");
  });

  it("names the layer range for an empty match", () => {
    const error = specErrorOf(() => resolveSelection(select.role("attn.q").and(select.layers([5])), llama, "lora targets", ["linear"]));
    expect(error.message).toContain("matches no module of the model");
    expect(error.message).toContain("The model's layers are 0..1.");
  });

  it("lists layers with gaps one by one", () => {
    const targets = [linearTarget("layers.0.attn.q", "attn.q", 0), linearTarget("layers.2.attn.q", "attn.q", 2)];
    const error = specErrorOf(() => resolveSelection(select.layers([1]), targets, "lora targets", ["linear"]));
    expect(error.message).toContain("The model's layers are 0, 2.");
  });

  it("omits layers for parts without a layer term", () => {
    const error = specErrorOf(() => resolveSelection(select.path("layers.*.attn.vv"), llama, "lora targets", ["linear"]));
    expect(error.message).not.toContain("The model's layers");
  });

  it("accepts selectors whose every part matches", () => {
    expect(paths(resolveSelection(select.path("layers.*.attn.q", "layers.*.attn.v"), llama, "lora targets", ["linear"]).targets)).toHaveLength(4);
    expect(paths(resolveSelection(select.role("attn.v").and(select.layers([0, 1])), llama, "lora targets", ["linear"]).targets)).toHaveLength(2);
    expect(paths(resolveSelection(select.role("attn.q", "attn.v"), gpt2, "lora targets", ["linear"]).targets)).toHaveLength(4);
  });
});

describe("resolveSelection on a model without modules", () => {
  it("says discovery found no modules", () => {
    const error = specErrorOf(() => resolveSelection(select.path("layers.*.attn.q"), [], "lora targets", ["linear"]));
    expect(error.message).toContain("Module discovery found no modules in this model, so no selector can match. Run `peftc inspect MODEL` to see what it found.");
    expect(error.message).not.toContain("Closest module paths");
  });
});

describe("missed-layer warnings", () => {
  // Three layers; layer 1 has no attn.v.
  const targets = [
    linearTarget("layers.0.attn.q", "attn.q", 0),
    linearTarget("layers.0.attn.v", "attn.v", 0),
    linearTarget("layers.1.attn.q", "attn.q", 1),
    linearTarget("layers.2.attn.q", "attn.q", 2),
    linearTarget("layers.2.attn.v", "attn.v", 2),
    linearTarget("head", "head", null),
  ];

  it("warn when a role exists only in some layers", () => {
    const selection = resolveSelection(select.role("attn.q", "attn.v"), targets, "lora targets", ["linear"]);
    expect(paths(selection.targets)).toHaveLength(5);
    expect(selection.warnings).toHaveLength(1);
    expect(selection.warnings[0].message).toContain("selects attn.v in layers 0, 2 but not in layers 1");
    expect(selection.warnings[0].site?.file).toBe(__filename);
    expect(formatWarning(selection.warnings[0])).toMatch(/^.+:\d+:\d+: warning: lora targets: /);
  });

  it("stay quiet when the selector restricts layers", () => {
    expect(resolveSelection(select.role("attn.v").and(select.layers([0, 2])), targets, "lora targets").warnings).toEqual([]);
    expect(resolveSelection(select.path("layers.{0,2}.attn.v"), targets, "lora targets").warnings).toEqual([]);
  });

  it("stay quiet when every layer has the role", () => {
    expect(resolveSelection(select.role("attn.q"), targets, "lora targets").warnings).toEqual([]);
  });
});

describe("formatWarning", () => {
  it("formats with and without a site", () => {
    expect(formatWarning({ message: "m", site: { file: "/s.ts", line: 3, column: 7 } })).toBe("/s.ts:3:7: warning: m");
    expect(formatWarning({ message: "m", site: undefined })).toBe("warning: m");
  });
});
